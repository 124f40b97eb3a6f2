"""The ``runs`` command: ``runs compare A B`` shows what differs between two run folders.

It compares the manifests (config keys, data files by SHA-256, split, seed, package versions, git commit,
machine) and prints both runs' metrics side by side. Runs made before manifests are compared on their
``config.json`` and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modalrec.errors import RunFolderError
from modalrec.io_utils import read_json

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HASH_SHOWN = 12  # leading hex digits of a SHA-256 shown


def add_runs_parser(sub: Any) -> None:
    runs = sub.add_parser("runs", help="inspect run folders")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, metavar="SUBCOMMAND")
    compare = runs_sub.add_parser("compare", help="what differs between two runs: config, data, versions, metrics")
    compare.add_argument("first", metavar="RUN_A", help="the first run folder (A)")
    compare.add_argument("second", metavar="RUN_B", help="the second run folder (B), compared with A")
    compare.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    print(compare_runs(Path(args.first), Path(args.second)))
    return 0


# ---------------------------------------------------------------------------------------------
# Reading

def read_run_record(folder: Path) -> dict[str, Any]:
    """``config``, ``manifest`` (None for older runs) and ``metrics`` (None while training) of a run folder."""
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: no such run folder")
    config = _read_json(folder / CONFIG_FILE)
    if config is None:
        raise RunFolderError(f"{folder}: not a run folder (no {CONFIG_FILE}; `modalrec train --out` makes one)")
    return {"config": config, "manifest": _read_json(folder / "manifest.json"),
            "metrics": _read_json(folder / METRICS_FILE)}


def _read_json(path: Path) -> Any:
    return read_json(path) if path.is_file() else None


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: ``{"train": {"epochs": 5}}`` -> ``{"train.epochs": 5}``."""
    if not isinstance(values, dict):
        return {prefix: values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return flat


# ---------------------------------------------------------------------------------------------
# Comparing

def compare_runs(first: Path, second: Path) -> str:
    """A plain-text report: differing settings, data, versions and environment, then metrics side by side."""
    a, b = read_run_record(first), read_run_record(second)
    lines = [f"A: {first}", f"B: {second}", ""]
    lines += _section("config", flatten(a["config"]), flatten(b["config"]))
    manifest_a, manifest_b = a["manifest"] or {}, b["manifest"] or {}
    for name, manifest in (("A", a["manifest"]), ("B", b["manifest"])):
        if manifest is None:
            lines.append(f"manifest: run {name} has none (made before manifests); data and versions not compared")
    if a["manifest"] is not None and b["manifest"] is not None:
        lines += _section("data", _data_files(manifest_a), _data_files(manifest_b))
        lines += _section("split", _split(manifest_a), _split(manifest_b))
        lines += _section("versions", manifest_a.get("versions", {}), manifest_b.get("versions", {}))
        lines += _section("git", _git(manifest_a), _git(manifest_b))
        lines += _section("environment", flatten(manifest_a.get("environment", {})),
                          flatten(manifest_b.get("environment", {})))
    lines += _metrics(a["metrics"], b["metrics"])
    return "\n".join(lines)


def _data_files(manifest: dict[str, Any]) -> dict[str, Any]:
    files = manifest.get("data", {}).get("files", [])
    return {entry["name"]: f"{entry['bytes']} bytes, sha256 {entry['sha256'][:HASH_SHOWN]}" for entry in files}


def _split(manifest: dict[str, Any]) -> dict[str, Any]:
    split = dict(manifest.get("split", {}))
    if "sha256" in split:
        split["sha256"] = split["sha256"][:HASH_SHOWN]
    return split


def _git(manifest: dict[str, Any]) -> dict[str, Any]:
    state = manifest.get("git")
    if state is None:
        return {"commit": "(not a git checkout)"}
    return {"commit": state.get("commit"), "dirty": state.get("dirty")}


def _section(title: str, a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """``title: same (N)`` or the keys that differ, A's value then B's."""
    keys = sorted(a.keys() | b.keys())
    differing = [key for key in keys if a.get(key, _MISSING) != b.get(key, _MISSING)]
    if not differing:
        return [f"{title}: same ({len(keys)} entries)"]
    rows = [(key, _show(a.get(key, _MISSING)), _show(b.get(key, _MISSING))) for key in differing]
    return [f"{title}: {len(differing)} of {len(keys)} differ", *_table(("", "A", "B"), rows), ""]


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


_MISSING = _Missing()


def _show(value: Any) -> str:
    if isinstance(value, _Missing):
        return "(absent)"
    return value if isinstance(value, str) else json.dumps(value)


def _metrics(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    if a is None or b is None:
        missing = " and ".join(name for name, m in (("A", a), ("B", b)) if m is None)
        return [f"metrics: {missing} has no {METRICS_FILE} yet (still training, or stopped: `train --resume`)"]
    rows = []
    for part in ("test", "valid"):
        for name in sorted(a.get(part, {}).keys() | b.get(part, {}).keys(), key=_metric_order):
            rows.append((f"{part} {name}", *_numbers(a.get(part, {}).get(name), b.get(part, {}).get(name))))
    for name in ("best_epoch", "epochs", "train_seconds"):
        rows.append((name, *_numbers(a.get(name), b.get(name))))
    same = all(row[3] in ("0", "") for row in rows[:-1])  # training time always differs
    title = "metrics: identical" if same else "metrics:"
    return [title, *_table(("", "A", "B", "B - A"), rows)]


def _metric_order(name: str) -> tuple[str, int]:
    metric, _, cut = name.partition("@")
    return metric, int(cut) if cut.isdigit() else 0


def _numbers(a: Any, b: Any) -> tuple[str, str, str]:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        difference = b - a
        shown = "0" if difference == 0 else f"{difference:+.4g}"
        return _number(a), _number(b), shown
    return _number(a), _number(b), ""


def _number(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in [header, *rows]]
