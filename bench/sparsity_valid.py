"""Validation and test recall@20 of sparsity-protocol runs, for choosing settings on validation.

``modalrec benchmark --protocol sparsity`` renders test metrics only; its ``results.json`` also records each
run's validation recall@20. ``collect`` appends one JSON line per run of a benchmark's ``results.json`` to a
results file, under a setting name; ``render`` prints the mean validation and test recall@20 per setting and
fraction, relative to the reference setting's.

    python bench/sparsity_valid.py collect --name lr2e-3 --folder /tmp/s12/sp-lr2 --out FILE.jsonl
    python bench/sparsity_valid.py render --reference lightgcn --out FILE.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from modalrec.experiments.protocols import RANK_METRIC, read_results


def collect(name: str, folder: Path, out: Path, models: list[str]) -> int:
    """Append one line per successful run in ``folder``'s ``results.json`` (of ``models``, or all); returns how many."""
    lines = [{"setting": name, "model": run["model"], "fraction": run["fraction"], "seed": run["seed"],
              "valid": run["valid"]["overall"], "test": run["tasks"]["overall"][RANK_METRIC]}
             for run in read_results(folder)["runs"]
             if not run["error"] and (not models or run["model"] in models)]
    with out.open("a") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in lines)
    return len(lines)


def render(out: Path, reference: str) -> str:
    """A Markdown table: mean validation and test recall@20 per setting and fraction, and their relative
    difference from the ``reference`` setting's means at the same fraction."""
    values: dict[tuple[str, float], dict[str, list[float]]] = defaultdict(lambda: {"valid": [], "test": []})
    for line in out.read_text().splitlines():
        row = json.loads(line)
        values[row["setting"], row["fraction"]]["valid"].append(row["valid"])
        values[row["setting"], row["fraction"]]["test"].append(row["test"])
    fractions = sorted({fraction for _, fraction in values})
    header = "| setting | " + " | ".join(f"{f:.0%} valid | {f:.0%} test" for f in fractions) + " | runs |"
    lines = [header, "|" + "---|" * (2 * len(fractions) + 2)]
    for setting in dict.fromkeys(setting for setting, _ in values):
        cells, runs = [], 0
        for fraction in fractions:
            mine, base = values.get((setting, fraction)), values.get((reference, fraction))
            for split in ("valid", "test"):
                if not mine:
                    cells.append("-")
                    continue
                mean = statistics.mean(mine[split])
                relative = f" ({mean / statistics.mean(base[split]) - 1:+.1%})" if base and setting != reference else ""
                cells.append(f"{mean:.4f}{relative}")
            runs += len(mine["valid"]) if mine else 0
        lines.append(f"| {setting} | " + " | ".join(cells) + f" | {runs} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("collect")
    add.add_argument("--name", required=True)
    add.add_argument("--folder", type=Path, required=True)
    add.add_argument("--models", default="", help="comma-separated; empty: every model in the folder")
    add.add_argument("--out", type=Path, required=True)
    show = commands.add_parser("render")
    show.add_argument("--reference", required=True)
    show.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "collect":
        count = collect(args.name, args.folder, args.out, [m for m in args.models.split(",") if m])
        print(f"{count} runs from {args.folder} appended to {args.out}")
    else:
        print(render(args.out, args.reference))


if __name__ == "__main__":
    main()
