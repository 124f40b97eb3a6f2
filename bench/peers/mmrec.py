"""MMRec's own training loop and modalrec's, side by side on the same data, settings and thread count.

For each round and model, two child processes run one after the other (MMRec first in even rounds,
modalrec first in odd ones): ``mmrec_child.py`` runs MMRec's ``quick_start`` from a local checkout
(``--mmrec-src``, never part of this repository: fetch it yourself, e.g. ``git clone
https://github.com/enoche/MMRec`` at commit e775373), ``modalrec_child.py`` runs modalrec's trainer. Both
train with seed ``--seed``, early stopping on validation recall@20, at most ``--max-seconds`` of
training (when given), ``--threads`` torch threads (``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` set to match).
With ``--settings same`` (the default) MMRec trains the first value of each list in its model YAML and
modalrec the same values (:data:`MMREC_SETTINGS`); with ``--settings defaults`` each library trains its own
model and training defaults (the time to quality a user sees), except the training settings given.

Recorded per run: per-epoch training seconds, per-epoch validation recall@20 and the time since the
process started, valid + test evaluation seconds (timed again after training), final valid/test metrics
at the best validation epoch, setup seconds, peak RSS (``os.wait4``'s rusage of the child) and the load
average before and after. Results go to ``--out`` as ``results.json`` (rewritten after every run),
``results.csv`` and ``speed.md`` (``report.py``; ``render.py`` regenerates it from the JSON).

    .venv/bin/python bench/peers/mmrec.py --mmrec-src /work/peers/MMRec \\
        --dataset ../shared/datasets/ml100k-posters/mmrec --models lightgcn,vbpr,freedom,mmgcn \\
        --threads 1 --rounds 3
    .venv/bin/python bench/peers/mmrec.py --mmrec-src /work/peers/MMRec --models lightgcn --epochs 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
from mmrec_child import MMREC_NAMES  # noqa: E402
from processes import last_line, wait_child  # noqa: E402

REPO = HERE.parent.parent

# MMRec's first grid values (src/configs/model/*.yaml at e775373) in modalrec's names.
MMREC_SETTINGS: dict[str, dict[str, Any]] = {
    "bpr": {"embedding_dim": 64},
    "lightgcn": {"embedding_dim": 64, "num_layers": 1, "reg_weight": 1e-2},
    "vbpr": {"embedding_dim": 64, "content_dim": 64, "reg_weight": 2.0},
    "freedom": {"embedding_dim": 64, "content_dim": 64, "knn_k": 10, "num_ui_layers": 2, "num_mm_layers": 1,
                "dropout": 0.8, "reg_weight": 0.0},
    "mmgcn": {"embedding_dim": 64, "num_layers": 2, "reg_weight": 0.0},
}
# --settings same: the training settings both sides get unless given (MMRec's overall.yaml)
SAME_TRAINING = {"epochs": 1000, "patience": 20, "batch_size": 2048, "learning_rate": 1e-3}
# Modules a peer model imports that no shim replaces: if they are missing, the model is skipped.
PEER_IMPORTS = ("torch_geometric",)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mmrec-src", required=True, help="a local MMRec checkout (the folder holding src/)")
    parser.add_argument("--dataset", default=str(REPO.parent / "shared/datasets/ml100k-posters/mmrec"),
                        help="a dataset folder in the MMRec layout, read by both sides; or ml100k, baby, elec "
                             "for bench/datasets.py's (Baby's interactions with random features of the real "
                             "shapes, generated on first use)")
    parser.add_argument("--models", default="lightgcn,vbpr,freedom,mmgcn", help="comma-separated modalrec names")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="A/B rounds; the order alternates")
    parser.add_argument("--settings", choices=("same", "defaults"), default="same",
                        help="same: both sides train MMRec's first grid values with the training settings below "
                             "(unset ones: epochs 1000, patience 20, batch 2048, lr 0.001); defaults: each "
                             "library's own model and training defaults, except the settings given below")
    parser.add_argument("--epochs", type=int, default=None, help="epoch cap for both sides")
    parser.add_argument("--max-seconds", type=float, default=None, help="training time cap per run")
    parser.add_argument("--patience", type=int, default=None, help="early stopping (MMRec's stopping_step)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--seed", type=int, default=999, help="MMRec's default seed")
    parser.add_argument("--eval-repeats", type=int, default=3, help="valid + test passes timed after training")
    parser.add_argument("--mmrec-python", default=sys.executable, help="the interpreter that runs MMRec")
    parser.add_argument("--mmrec-pythonpath", default="",
                        help="extra import path for MMRec's side only (e.g. a `pip install --target` folder "
                             "holding torch_geometric for MMGCN)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per child run")
    parser.add_argument("--out", default=None, help="output folder (default runs/peers/mmrec-<time>)")
    return parser.parse_args(argv)


def resolve_dataset(name: str) -> str:
    """A folder path; bench/datasets.py's names (ml100k, baby, elec) are built or found in its cache."""
    if name in ("ml100k", "baby", "elec"):
        sys.path.insert(0, str(HERE.parent))
        from datasets import dataset_path

        return str(dataset_path(name))
    return name


def git_commit(folder: Path) -> tuple[str, bool]:
    """(short commit, has uncommitted changes to tracked files) of the repository holding ``folder``."""
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return commit, bool(dirty)


def skip_reason(args: argparse.Namespace, model: str) -> str | None:
    """Why ``model`` cannot run side by side here, or None."""
    src = Path(args.mmrec_src) / "src"
    if not (src / "utils" / "quick_start.py").is_file():
        return f"no MMRec checkout at {args.mmrec_src} (expected src/utils/quick_start.py)"
    peer = MMREC_NAMES.get(model)
    if peer is None or not (src / "models" / f"{peer.lower()}.py").is_file():
        return f"MMRec has no model matching '{model}'"
    if args.settings == "same" and model not in MMREC_SETTINGS:
        return f"no MMRec settings mapped for '{model}' (use --settings defaults)"
    code = (src / "models" / f"{peer.lower()}.py").read_text(errors="replace")
    for module in PEER_IMPORTS:
        if f"import {module}" in code or f"from {module}" in code:
            probe = subprocess.run([args.mmrec_python, "-c", f"import {module}"], capture_output=True,
                                   env=child_env(args.threads, args.mmrec_pythonpath))
            if probe.returncode != 0:
                return (f"MMRec's {peer} imports {module}, which {args.mmrec_python} cannot import "
                        "(install it, e.g. with pip install --target DIR, and pass --mmrec-pythonpath DIR)")
    return None


def child_env(threads: int, extra_path: str = "") -> dict[str, str]:
    paths = [p for p in (extra_path, str(REPO), os.environ.get("PYTHONPATH", "")) if p]
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "PYTHONPATH": os.pathsep.join(paths)}


def run_child(script: str, spec: dict[str, Any], python: str, env: dict[str, str], timeout: float | None,
              log: Path) -> dict[str, Any]:
    """Run one child; its result, wall seconds, peak RSS (from ``wait4``) and the load around it."""
    record: dict[str, Any] = {"load_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="peer-result-") as folder, log.open("w") as sink:
        out = Path(folder) / "result.json"
        start = time.perf_counter()
        child = subprocess.Popen([python, str(HERE / script), json.dumps(spec), str(out)], stdout=sink,
                                 stderr=subprocess.STDOUT, env=env)
        status, usage = wait_child(child, timeout)
        record["wall_s"] = time.perf_counter() - start
        record["load_after"] = list(os.getloadavg())
        record["peak_rss_mib"] = usage.ru_maxrss / 1024 if usage is not None else None  # Linux: KiB
        record["returncode"] = status
        if out.is_file():
            record["result"] = json.loads(out.read_text())
        else:
            record["error"] = "timed out" if status is None else f"exit {status}: {last_line(log)}"
    return record


def child_spec(args: argparse.Namespace, model: str, side: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": model, "dataset": str(Path(args.dataset).resolve()), "threads": args.threads, "seed": args.seed,
        "learning_rate": args.learning_rate, "batch_size": args.batch_size, "epochs": args.epochs,
        "patience": args.patience, "max_seconds": args.max_seconds, "eval_repeats": args.eval_repeats}
    if side == "mmrec":
        spec["mmrec_src"] = str(Path(args.mmrec_src).resolve())
    elif args.settings == "same":
        spec["model_settings"] = MMREC_SETTINGS[model]
    return spec


def write_outputs(results: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.csv").write_text(report.to_csv(results))
    (out / "speed.md").write_text(report.render_markdown(results, source=str(out / "results.json")))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.dataset = resolve_dataset(args.dataset)
    if args.settings == "same":
        for name, value in SAME_TRAINING.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
    import torch

    stamp = datetime.datetime.now(datetime.timezone.utc)
    out = Path(args.out or REPO / "runs" / "peers" / f"mmrec-{stamp:%Y%m%d-%H%M%S}")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    commit, dirty = git_commit(REPO)
    results: dict[str, Any] = {
        "harness": "bench/peers/mmrec.py", "date": f"{stamp:%Y-%m-%d %H:%M} UTC",
        "command": " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "modalrec_commit": commit, "modalrec_dirty": dirty, "mmrec_commit": git_commit(Path(args.mmrec_src))[0],
        "dataset": args.dataset, "cpus": os.cpu_count(), "torch": torch.__version__,
        "python": platform.python_version(),
        "settings": {k: getattr(args, k) for k in ("threads", "rounds", "epochs", "max_seconds", "patience",
                                                   "batch_size", "learning_rate", "seed", "settings",
                                                   "eval_repeats", "mmrec_pythonpath")},
        "skipped": {}, "runs": []}
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for model in list(models):
        reason = skip_reason(args, model)
        if reason:
            print(f"skip {model}: {reason}", file=sys.stderr)
            results["skipped"][model] = reason
            models.remove(model)
    for round_index in range(args.rounds):
        for model in models:
            sides = ("mmrec", "modalrec") if round_index % 2 == 0 else ("modalrec", "mmrec")
            for order, side in enumerate(sides):
                script = "mmrec_child.py" if side == "mmrec" else "modalrec_child.py"
                python = args.mmrec_python if side == "mmrec" else sys.executable
                env = child_env(args.threads, args.mmrec_pythonpath if side == "mmrec" else "")
                log = out / "logs" / f"{model}-{side}-round{round_index}.log"
                record = run_child(script, child_spec(args, model, side), python, env, args.timeout, log)
                record.update(round=round_index, side=side, model=model, order=order)
                results["runs"].append(record)
                write_outputs(results, out)
                brief = {k: record.get("result", {}).get(k) for k in ("epoch_s", "eval_s", "epochs_run")}
                print(f"round {round_index} {model} {side}: {record.get('error') or brief} "
                      f"load {record['load_before'][0]:.2f}->{record['load_after'][0]:.2f}", file=sys.stderr)
    write_outputs(results, out)
    print(f"wrote {out / 'results.json'}, results.csv, speed.md", file=sys.stderr)


if __name__ == "__main__":
    main()
