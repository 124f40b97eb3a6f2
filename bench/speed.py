"""Speed and memory of modalrec's models against MMRec's own code: prints tables, times nothing in CI.

For each dataset and model, in a child process of its own (so that its peak resident memory is its own):

- s/epoch: the median wall-clock seconds of a training epoch at MMRec's settings (batch 2048, Adam at
  lr 1e-3, MMRec's embedding sizes and first grid values, see ``MMREC_SETTINGS``), and its CPU seconds;
- floor: the seconds the epoch's matrix products (sparse propagations forward and backward, dense products)
  take when each is replayed alone (``bench/kernels.py``); "x floor" is s/epoch over that;
- s/eval: one full-ranking evaluation of valid plus one of test, as the trainer runs them;
- setup: reading the data and building the model (kNN graphs included); peak RSS of the process.

Then, on (a), time to quality: wall-clock seconds from the child's start (imports, data, model build
included) until test recall@20 first reaches MMRec's final figure, with training settings chosen for speed
(``QUALITY_SETTINGS``). Only inside this benchmark is test evaluated after every epoch, to detect the
crossing; that time is counted too.

Datasets: (a) ml100k-posters as shipped, (b) Amazon Baby's interactions with seeded random features of
the real shapes, (c) an Amazon-Elec-sized generated dataset (``bench/datasets.py``; cached in
``$MODALREC_BENCH_DIR``, else ``/tmp/modalrec-bench``).

    .venv/bin/python bench/speed.py                                   # (a) and (b), every model
    .venv/bin/python bench/speed.py --datasets c --models lightgcn,freedom
    .venv/bin/python bench/speed.py --datasets a --threads 1,2 --no-quality
"""

from __future__ import annotations

import time

START = time.perf_counter()  # the child's clock for time to quality starts before torch is imported

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATASETS = {"a": "ml100k", "b": "baby", "c": "elec"}
MODELS = ("lightgcn", "vbpr", "freedom", "mmgcn")
DEFAULT_EPOCHS = {"a": 5, "b": 3, "c": 1}
DEFAULT_EVAL_REPEATS = {"a": 3, "b": 3, "c": 1}

# MMRec's own code on this machine type (../shared/datasets/README.md, "Reference results"): s/epoch,
# s/eval (valid + test); on (a) also the final test recall@20 and the whole run's wall time. MMGCN's run
# was cut at the 25-minute cap, so its wall time is taken as 1500 s. On (b) only LightGCN and FREEDOM
# were timed (means of two runs); MMRec's evaluation does not depend on the model, so 5.4 s is used for all.
MMREC: dict[str, dict[str, dict[str, float]]] = {
    "ml100k": {
        "lightgcn": {"epoch": 0.78, "eval": 0.22, "recall": 0.3429, "wall": 239},
        "vbpr": {"epoch": 0.69, "eval": 0.23, "recall": 0.3334, "wall": 736},
        "freedom": {"epoch": 1.44, "eval": 0.24, "recall": 0.3381, "wall": 270},
        "mmgcn": {"epoch": 23.25, "eval": 0.21, "recall": 0.2768, "wall": 1500},
    },
    "baby": {
        "lightgcn": {"epoch": 2.205, "eval": 5.47},
        "vbpr": {"eval": 5.4},
        "freedom": {"epoch": 18.40, "eval": 5.42},
        "mmgcn": {"eval": 5.4},
    },
}

# The first value of each list in MMRec's model YAML (src/configs/model/*.yaml), in modalrec's names.
MMREC_SETTINGS: dict[str, dict[str, Any]] = {
    "lightgcn": {"embedding_dim": 64, "num_layers": 1, "reg_weight": 1e-2},
    "vbpr": {"embedding_dim": 64, "content_dim": 64, "reg_weight": 2.0},
    "freedom": {"embedding_dim": 64, "content_dim": 64, "knn_k": 10, "num_ui_layers": 2, "num_mm_layers": 1,
                "dropout": 0.8, "reg_weight": 0.0},
    "mmgcn": {"embedding_dim": 64, "num_layers": 2, "reg_weight": 0.0},
}

# Time to quality on (a): the model's own defaults, training settings chosen for speed.
QUALITY_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "lightgcn": {"train": {"batch_size": 2048, "learning_rate": 1e-2}, "model": {}},
    "vbpr": {"train": {"batch_size": 2048, "learning_rate": 5e-3}, "model": {}},
    "freedom": {"train": {"batch_size": 2048, "learning_rate": 5e-3}, "model": {}},
    "mmgcn": {"train": {"batch_size": 2048, "learning_rate": 1e-3}, "model": {}},
}
QUALITY_MAX_EPOCHS = 400
QUALITY_PATIENCE = 30  # give up after this many epochs without a better validation recall@20


# -- child jobs ---------------------------------------------------------------------------------------

def child_main(spec: dict[str, Any]) -> None:
    import torch

    torch.set_num_threads(spec["threads"])
    if not spec.get("system_malloc"):
        from modalrec.train.memory import keep_freed_memory

        keep_freed_memory()
    job = {"speed": speed_job, "quality": quality_job}[spec["job"]]
    result = job(spec)
    result.setdefault("peak_rss_gib", peak_rss_gib())
    print("RESULT " + json.dumps(result), flush=True)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _setup(spec: dict[str, Any], model_values: dict[str, Any], train_values: dict[str, Any]) -> Any:
    """Read the data, build the model and its Trainer; returns (trainer, seconds for data, for model)."""
    import torch

    import modalrec.models  # noqa: F401  (registers the models)
    from datasets import dataset_path
    from modalrec.config import DataConfig, EvalConfig, TrainConfig, build
    from modalrec.models.registry import get_model
    from modalrec.train.run import model_inputs, prepare_data
    from modalrec.train.trainer import Trainer

    start = time.perf_counter()
    prepared = prepare_data(dataset_path(spec["dataset"]), DataConfig())
    data_seconds = time.perf_counter() - start
    entry = get_model(spec["model"])
    torch.manual_seed(spec["seed"])
    start = time.perf_counter()
    model = entry.model_class(build(entry.config_class, model_values, section="model"),
                              model_inputs(prepared.dataset, prepared.split))
    model_seconds = time.perf_counter() - start
    train = build(TrainConfig, {"progress": False, "patience": 0, "device": spec["device"],
                                "threads": spec["threads"], "fused_optimizer": spec.get("fused_optimizer", False),
                                **train_values}, section="train")
    trainer = Trainer(model, prepared.split, train, EvalConfig(), seed=spec["seed"])
    return trainer, data_seconds, model_seconds


def _timed(run: Any) -> tuple[float, float]:
    """(wall, CPU) seconds of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def _evaluate_both(trainer: Any) -> None:
    trainer.evaluate("valid")
    trainer.evaluate("test")


def _evaluate_joint(trainer: Any, joint: Any) -> None:
    trainer.model.eval()
    joint.evaluate(trainer.model.ranking_scorer(), trainer.device)


def speed_job(spec: dict[str, Any]) -> dict[str, Any]:
    from kernels import MatmulRecorder

    from modalrec.evaluate.evaluator import JointEvaluator

    load_before = os.getloadavg()[0]
    trainer, data_seconds, model_seconds = _setup(
        spec, MMREC_SETTINGS[spec["model"]], {"batch_size": 2048, "learning_rate": 1e-3})
    recorder = MatmulRecorder() if spec["floor"] else None
    if recorder is not None and spec["epochs"] == 1:  # one epoch (c): record the products while timing it
        with recorder:
            epochs = [_timed(trainer.train_one_epoch)]
    else:
        epochs = [_timed(trainer.train_one_epoch) for _ in range(spec["epochs"])]
    evals = [_timed(lambda: _evaluate_both(trainer)) for _ in range(spec["eval_repeats"])]
    joint = JointEvaluator(trainer.evaluators)
    joints = [_timed(lambda: _evaluate_joint(trainer, joint)) for _ in range(spec["eval_repeats"])]
    scorer = trainer.model.ranking_scorer()  # the embeddings of the last joint pass: ranking alone from here
    ranks = [_timed(lambda: joint.evaluate(scorer, trainer.device)) for _ in range(spec["eval_repeats"])]
    result: dict[str, Any] = {
        "data_s": data_seconds, "model_s": model_seconds,
        "epoch_s": statistics.median(e[0] for e in epochs), "epoch_cpu_s": statistics.median(e[1] for e in epochs),
        "eval_s": statistics.median(e[0] for e in evals), "eval_cpu_s": statistics.median(e[1] for e in evals),
        "joint_s": statistics.median(e[0] for e in joints), "joint_cpu_s": statistics.median(e[1] for e in joints),
        "rank_s": statistics.median(e[0] for e in ranks), "rank_cpu_s": statistics.median(e[1] for e in ranks),
        "epochs": [e[0] for e in epochs], "evals": [e[0] for e in evals],
        "peak_rss_gib": peak_rss_gib(),  # before the floor's copies and the profiler
    }
    if recorder is not None:
        if spec["epochs"] > 1:
            with recorder:
                trainer.train_one_epoch()
        result["products_in_epoch_cpu_s"] = recorder.in_place()[1]
        result["floor_s"], result["floor_cpu_s"] = recorder.floor()
        result["floor_table"] = recorder.table()[:6]
    if spec["profile"]:
        result["profile"] = _profile(trainer)
    result["load"] = [load_before, os.getloadavg()[0]]
    return result


def _profile(trainer: Any) -> dict[str, str]:
    from torch.profiler import ProfilerActivity, profile

    tables = {}
    for name, run in (("epoch", trainer.train_one_epoch), ("eval", lambda: _evaluate_both(trainer))):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        tables[name] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    return tables


def quality_job(spec: dict[str, Any]) -> dict[str, Any]:
    settings = QUALITY_SETTINGS[spec["model"]]
    target = MMREC["ml100k"][spec["model"]]["recall"]
    budget = MMREC["ml100k"][spec["model"]]["wall"]
    trainer, _, _ = _setup(spec, settings["model"], {**settings["train"], "epochs": QUALITY_MAX_EPOCHS})
    history = []
    test_seconds = 0.0
    for epoch in range(QUALITY_MAX_EPOCHS):
        trainer.train_one_epoch()
        valid = trainer.evaluate("valid").mean()["recall@20"]
        before_test = time.perf_counter()
        test = trainer.evaluate("test").mean()["recall@20"]
        test_seconds += time.perf_counter() - before_test
        elapsed = time.perf_counter() - START
        history.append((epoch, round(elapsed, 2), round(valid, 4), round(test, 4), round(time.process_time(), 2)))
        best_epoch = max(history, key=lambda h: h[2])[0]
        if test >= target or elapsed > budget or epoch - best_epoch >= QUALITY_PATIENCE:
            break
    reached = history[-1][3] >= target
    return {"reached": reached, "epochs": len(history), "seconds": history[-1][1], "cpu_seconds": history[-1][4],
            "test_eval_s": test_seconds, "target": target, "recall": history[-1][3],
            "best_valid": max(h[2] for h in history), "history": history, "load": os.getloadavg()[0]}


# -- the parent: run the children, print the tables -------------------------------------------------

def run_child(spec: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT "):]))
    return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()
            if k not in ("floor_table", "profile", "history")}


def ratio(theirs: float | None, ours: float | None) -> str:
    return f"{theirs / ours:.1f}x" if theirs and ours else "n/a"


def number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_speed_table(letter: str, threads: int, results: dict[str, dict[str, Any]], epochs: int) -> None:
    dataset = DATASETS[letter]
    loads = [x for r in results.values() for x in r.get("load", [])]
    load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "n/a"
    print(f"\n({letter}) {dataset}, {threads} thread(s), 1-min load average {load} on {os.cpu_count()} cores. "
          "wall/cpu: our wall-clock and process-CPU\n    seconds (equal on an idle core with 1 thread); MMRec: "
          "its wall seconds; x: MMRec's seconds / ours, by our CPU and by our wall time")
    print(f"  training, median of {epochs} epoch(s) at MMRec's settings; floor: CPU seconds of the epoch's "
          "matrix products replayed alone")
    row = "{:<10}{:>11}{:>7}{:>7}{:>10}{:>7}{:>7}{:>7}{:>9}{:>11}"
    print(row.format("model", "epoch wall", "cpu", "floor", "cpu/floor", "MMRec", "x cpu", "x wall", "setup s",
                     "peak RSS"))
    for model, r in results.items():
        if "error" in r:
            print(f"{model:<10}failed: {r['error']}")
            continue
        theirs = MMREC.get(dataset, {}).get(model, {}).get("epoch")
        floor = r.get("floor_cpu_s")
        print(row.format(model, number(r["epoch_s"]), number(r["epoch_cpu_s"]), number(floor),
                         ratio(r["epoch_cpu_s"], floor), number(theirs), ratio(theirs, r["epoch_cpu_s"]),
                         ratio(theirs, r["epoch_s"]), number(r["data_s"] + r["model_s"], 1),
                         f"{r['peak_rss_gib']:.2f} GiB"))
    print("  evaluation, valid + test: as the trainer calls it (valid, then test) and together "
          "(JointEvaluator: one scoring and ranking per user);\n  rank: the joint pass again with the model's "
          "embeddings already computed (MMRec's MMGCN ranks the vectors its last training batch computed, so its "
          "evaluation\n  has no forward pass: compare MMGCN by x rank)")
    row = "{:<10}{:>11}{:>8}{:>11}{:>8}{:>10}{:>7}{:>9}{:>9}{:>11}{:>8}"
    print(row.format("model", "apart wall", "cpu", "joint wall", "cpu", "rank wall", "MMRec", "x apart", "x joint",
                     "x jnt wall", "x rank"))
    for model, r in results.items():
        if "error" in r:
            continue
        theirs = MMREC.get(dataset, {}).get(model, {}).get("eval")
        print(row.format(model, number(r["eval_s"], 3), number(r["eval_cpu_s"], 3), number(r["joint_s"], 3),
                         number(r["joint_cpu_s"], 3), number(r.get("rank_s"), 3), number(theirs),
                         ratio(theirs, r["eval_cpu_s"]), ratio(theirs, r["joint_cpu_s"]), ratio(theirs, r["joint_s"]),
                         ratio(theirs, r.get("rank_s"))))
    for model, r in results.items():
        if "floor_table" in r:
            print(f"  {model}: products {r['products_in_epoch_cpu_s']:.2f} s cpu inside the epoch, "
                  f"{r['floor_cpu_s']:.2f} s alone; the largest:")
        for description, calls, seconds in r.get("floor_table", [])[:3]:
            print(f"    {calls:5d} x {seconds * 1e3:8.2f} ms  {description}")
        for name, table in r.get("profile", {}).items():
            print(f"    profile {model} {name}:\n{table}")


def print_quality_table(results: dict[str, dict[str, Any]]) -> None:
    loads = [r["load"] for r in results.values() if "load" in r]
    print("\n(a) time to quality: wall (and process CPU) seconds from process start until test recall@20 first "
          "reaches MMRec's final figure")
    print("    (test is evaluated after every epoch only in this benchmark, to detect the crossing; its time is "
          f"included; 1-min load average at the end {min(loads, default=0):.1f}-{max(loads, default=0):.1f})")
    header = ("model", "settings", "target", "reached", "epochs", "wall s", "cpu s", "test s", "MMRec s", "x wall",
              "x cpu")
    print("{:<9}{:<24}{:>8}{:>11}{:>8}{:>8}{:>8}{:>8}{:>9}{:>8}{:>8}".format(*header))
    for model, r in results.items():
        if "error" in r:
            print(f"{model:<9} failed: {r['error']}")
            continue
        train = QUALITY_SETTINGS[model]["train"]
        settings = f"b={train['batch_size']} lr={train['learning_rate']:g}"
        mmrec = MMREC["ml100k"][model]["wall"]
        status = number(r["recall"], 4) if r["reached"] else f"no({r['recall']:.4f})"
        cpu = r.get("cpu_seconds")
        print("{:<9}{:<24}{:>8}{:>11}{:>8}{:>8}{:>8}{:>8}{:>9}{:>8}{:>8}".format(
            model, settings, number(r["target"], 4), status, r["epochs"], number(r["seconds"], 1), number(cpu, 1),
            number(r["test_eval_s"], 1), number(mmrec, 0), ratio(mmrec, r["seconds"]) if r["reached"] else "n/a",
            ratio(mmrec, cpu) if r["reached"] else "n/a"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="a,b", help="comma-separated: a (ml100k), b (baby), c (elec)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs (default: a 5, b 3, c 1)")
    parser.add_argument("--threads", default="1", help="torch threads; a list such as 1,2 runs each")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--eval-repeats", type=int, default=None, help="timed evaluations (default: a 3, b 3, c 1)")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc's allocator as it is (modalrec's trainer calls keep_freed_memory)")
    parser.add_argument("--fused-optimizer", action="store_true",
                        help="train with train.fused_optimizer=true (Adam's fused kernel; equal up to rounding)")
    parser.add_argument("--no-floor", action="store_true", help="skip the kernel floor (one more epoch)")
    parser.add_argument("--no-quality", action="store_true", help="skip time to quality on (a)")
    parser.add_argument("--no-speed", action="store_true", help="only time to quality (with --datasets a)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top operators")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per child process")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return
    import torch

    letters = [x.strip() for x in args.datasets.split(",") if x.strip()]
    models = [x.strip() for x in args.models.split(",") if x.strip()]
    print(f"bench/speed.py  torch {torch.__version__}  python {sys.version.split()[0]}  cpus {os.cpu_count()}  "
          f"device {args.device}  adam {'fused' if args.fused_optimizer else 'foreach'}")
    for threads in (int(t) for t in args.threads.split(",")):
        for letter in [] if args.no_speed else letters:
            epochs = args.epochs or DEFAULT_EPOCHS[letter]
            results = {}
            for model in models:
                spec = {"job": "speed", "dataset": DATASETS[letter], "model": model, "epochs": epochs,
                        "eval_repeats": args.eval_repeats or DEFAULT_EVAL_REPEATS[letter],
                        "system_malloc": args.system_malloc, "threads": threads, "device": args.device,
                        "fused_optimizer": args.fused_optimizer,
                        "seed": args.seed, "floor": not args.no_floor, "profile": args.profile}
                results[model] = run_child(spec, args.timeout)
                print(f"  [{DATASETS[letter]} {model}: {json.dumps(_summary(results[model]))}]", file=sys.stderr)
            print_speed_table(letter, threads, results, epochs)
        if "a" in letters and not args.no_quality:
            quality = {}
            for model in models:
                spec = {"job": "quality", "dataset": "ml100k", "model": model, "threads": threads,
                        "device": args.device, "seed": args.seed, "system_malloc": args.system_malloc,
                        "fused_optimizer": args.fused_optimizer}
                quality[model] = run_child(spec, args.timeout)
                print(f"  [time to quality {model}: {json.dumps(_summary(quality[model]))}]", file=sys.stderr)
            print_quality_table(quality)


if __name__ == "__main__":
    main()
