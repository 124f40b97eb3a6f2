"""The subcommands. Each parses its arguments, calls the library and prints the result: the public API
(:mod:`modalrec.api`) wherever it has the operation (evaluate, recommend, explain, benchmark, demo), so that
the shell and Python give the same answers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from modalrec.errors import ModalrecError


def register(sub: Any) -> None:
    from modalrec.cli.build_cmd import add_build_parser, add_extract_parser
    from modalrec.cli.features_cmd import add_features_parser
    from modalrec.cli.serve_cmd import add_serve_parsers

    add_build_parser(_add_data(sub))
    add_extract_parser(add_features_parser(sub))
    add_serve_parsers(sub)
    _add_models(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_recommend(sub)
    _add_explain(sub)
    _add_benchmark(sub)
    _add_tune(sub)
    _add_demo(sub)


MAX_SEED = 2**32 - 1  # numpy's legacy seeding (np.random.seed) takes 0 .. 2^32 - 1


def seed_value(text: str) -> int:
    """An argparse type: a whole number in 0 .. 2^32 - 1."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a seed in 0 .. {MAX_SEED}, got {seed}")
    return seed


def device_value(text: str) -> str:
    """An argparse type: a device name, in the syntax ``--set train.device=...`` takes."""
    from modalrec.device import DEVICE_HELP, check_device_name

    try:
        return check_device_name(text.strip().lower())
    except ModalrecError:
        raise argparse.ArgumentTypeError(f"expected {DEVICE_HELP}, got '{text}'") from None


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML or YAML file with [data] [train] [eval] [model] sections")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one setting, e.g. --set epochs=5 or --set model.embedding_dim=32 (repeatable)",
    )


# -- data --------------------------------------------------------------------------------------------

def _add_data(sub: Any) -> Any:
    data = sub.add_parser("data", help="inspect and build datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    info = data_sub.add_parser("info", help="users, items, sparsity, splits and modalities of a dataset")
    info.add_argument("path", help="dataset folder or interactions file")
    _config_arguments(info)
    info.set_defaults(handler=_data_info)
    return data_sub


def _data_info(args: argparse.Namespace) -> int:
    from modalrec.config import DataConfig, apply_overrides, build, read_config_file
    from modalrec.data.summary import summarize
    from modalrec.data.prepare import prepare_data

    sections = read_config_file(args.config) if args.config else {}
    merged = apply_overrides({"data": sections.get("data", {})}, args.overrides, {"data": DataConfig})
    config = build(DataConfig, merged.get("data", {}), section="data", file=args.config)
    print(summarize(prepare_data(args.path, config, allow_repeats=True)))
    return 0


# -- models ------------------------------------------------------------------------------------------

def _add_models(sub: Any) -> None:
    models = sub.add_parser("models", help="list the registered models")
    models.set_defaults(handler=_models)


def _models(args: argparse.Namespace) -> int:
    from modalrec.models import available_models

    width = max(len(entry.name) for entry in available_models())
    for entry in available_models():
        print(f"{entry.name:<{width}}  {entry.description}")
    return 0


# -- train -------------------------------------------------------------------------------------------

def _add_train(sub: Any) -> None:
    train = sub.add_parser("train", help="train a model and write a run folder")
    train.add_argument("--data", help="dataset folder or interactions file")
    train.add_argument("--model", help="model name (see `modalrec models`)")
    train.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder to write")
    train.add_argument("--seed", type=seed_value, help="seed for initialisation, shuffling and sampling (default 2024)")
    train.add_argument("--resume", action="store_true", help="continue the interrupted run in RUN_DIR")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in RUN_DIR")
    train.add_argument("--device", type=device_value,
                       help="auto, cpu, cuda or cuda:N; shortcut for --set train.device=... (default auto)")
    train.add_argument("--distributed", action="store_true",
                       help="train with DistributedDataParallel; launch with torchrun (see docs/training.md)")
    _config_arguments(train)
    train.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from modalrec.train.distributed import finish_together, from_environment, stop
    from modalrec.config import read_config_file
    from modalrec.train.run import ResumeChanges, resolve_config, resume_run, train_run

    context = from_environment()
    if args.distributed and not context.enabled:
        raise ModalrecError("train --distributed: launch it with torchrun (RANK/WORLD_SIZE are not set); "
                            "see docs/training.md")
    overrides = [*args.overrides, *([f"train.device={args.device}"] if args.device else [])]
    try:
        if args.resume:
            changes = ResumeChanges(overrides=tuple(overrides), data_path=args.data, model_name=args.model,
                                    seed=args.seed, sections=read_config_file(args.config) if args.config else {})
            result = resume_run(args.out, changes=changes, dist_context=context)
        else:
            if not args.data:
                raise ModalrecError("train: --data PATH is required (unless --resume)")
            config = resolve_config(args.data, args.model, config_file=args.config, overrides=overrides,
                                    seed=args.seed)
            result = train_run(config, args.out, overwrite=args.overwrite, dist_context=context)
        finish_together()
    finally:
        stop()
    if context.is_main:
        print(_metrics_line(result.test, "test"))
        if result.closed_form:
            print(f"solved in closed form when built (no training epochs); run in {args.out}")
        else:
            # counted from 1, as the progress lines count; metrics.json keeps the 0-based index
            print(f"best epoch {result.best_epoch + 1} of {result.epochs}, {result.train_seconds:.1f} s training; "
                  f"run in {args.out}")
    return 0


def _metrics_line(metrics: dict[str, float], split: str) -> str:
    shown = [name for name in metrics if name.split("@")[0] in ("recall", "ndcg", "precision")]
    return f"{split}: " + "  ".join(f"{name} {metrics[name]:.4f}" for name in shown)


# -- evaluate ----------------------------------------------------------------------------------------

def _add_evaluate(sub: Any) -> None:
    evaluate = sub.add_parser("evaluate", help="reload a run's best model and recompute its metrics")
    evaluate.add_argument("--run", required=True, metavar="RUN_DIR", help="a run folder written by `modalrec train`")
    evaluate.add_argument("--split", choices=("test", "valid"), default="test", help="which held-out split (default test)")
    evaluate.add_argument("--device", type=device_value, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    evaluate.add_argument("--json", action="store_true", help="print all metrics as JSON")
    evaluate.add_argument("--cold-items", action="store_true",
                          help="only test interactions with items that have no training interaction")
    evaluate.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from modalrec.api import load_run
    from modalrec.io_utils import read_json
    from modalrec.train.run import METRICS_FILE

    metrics = load_run(args.run, device=args.device).evaluate(args.split, cold_items=args.cold_items)
    label = f"{args.split} (cold items only)" if args.cold_items else args.split
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(_metrics_line(metrics, label))
    recorded_path = Path(args.run) / METRICS_FILE
    if args.cold_items:
        return 0
    if recorded_path.is_file():
        document = read_json(recorded_path)
        recorded = document.get(args.split, {}) if isinstance(document, dict) else {}
        shared = [name for name in recorded if name in metrics]
        worst = max((abs(float(recorded[name]) - metrics[name]) for name in shared), default=0.0)
        print(f"matches {METRICS_FILE} (largest difference {worst:.2g})" if worst < 1e-6
              else f"differs from {METRICS_FILE} by up to {worst:.4g}", file=sys.stderr)
    return 0


# -- recommend ---------------------------------------------------------------------------------------

def _add_recommend(sub: Any) -> None:
    recommend = sub.add_parser("recommend", help="top-k items per user, training items excluded; a user not in "
                                                 "the training data gets the most popular items (source: popular)")
    recommend.add_argument("--run", required=True, metavar="RUN_DIR", help="a run folder written by `modalrec train`")
    who = recommend.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", nargs="+", metavar="ID", help="user ids as in the dataset")
    who.add_argument("--all-users", action="store_true", help="every user of the run (use with --out)")
    recommend.add_argument("-k", type=int, default=20, help="items per user (default 20)")
    recommend.add_argument("--out", metavar="FILE.csv", help="write CSV here instead of printing")
    recommend.add_argument("--items", metavar="ITEMS.csv", help="take the title and picture columns from this items "
                           "table (columns item_id,title[,image]) instead of the dataset's own, e.g. for a run on "
                           "an MMRec-layout dataset")
    recommend.add_argument("--device", type=device_value, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    recommend.set_defaults(handler=_recommend)


def _recommend(args: argparse.Namespace) -> int:
    from modalrec.api import load_run
    from modalrec.io_utils import write_with

    if args.k < 1:
        raise ModalrecError(f"recommend: -k must be >= 1, got {args.k}")
    users = None if args.all_users else [str(u) for u in args.user]
    rows = load_run(args.run, device=args.device).recommend(users, args.k, items=args.items)
    if args.out:  # atomically: an interrupted command leaves the earlier file whole
        write_with(args.out, lambda handle: rows.to_csv(handle, index=False, float_format="%.6g"))
        print(f"wrote {len(rows)} rows to {args.out}")
    else:
        rows.to_csv(sys.stdout, index=False, float_format="%.6g")
    return 0


# -- explain -----------------------------------------------------------------------------------------

def _add_explain(sub: Any) -> None:
    explain = sub.add_parser("explain", help="how much each modality contributed to a user's recommendations")
    explain.add_argument("--run", required=True, metavar="RUN_DIR", help="a run folder written by `modalrec train`")
    explain.add_argument("--user", required=True, metavar="ID", help="a user id as in the dataset")
    explain.add_argument("-k", type=int, default=10, help="items to explain (default 10)")
    explain.add_argument("--device", type=device_value, default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    explain.add_argument("--json", action="store_true", help="print JSON instead of a table")
    explain.add_argument("--items", metavar="ITEMS.csv", help="take titles (and picture paths) from this items "
                         "table (columns item_id,title[,image]) instead of the dataset's own")
    explain.set_defaults(handler=_explain)


EXPLAINED = ("rank", "item_id", "score", "method")  # Run.explain's columns before the modalities'


def _explain(args: argparse.Namespace) -> int:
    from modalrec.api import DETAIL_COLUMNS, load_run

    if args.k < 1:
        raise ModalrecError(f"explain: -k must be >= 1, got {args.k}")
    rows = load_run(args.run, device=args.device).explain(str(args.user), args.k, items=args.items)
    names = [c for c in rows.columns if c not in (*EXPLAINED, *DETAIL_COLUMNS)]
    details = [c for c in DETAIL_COLUMNS if c in rows.columns]
    records = rows.to_dict("records")  # Python numbers, for JSON
    if args.json:
        described = [{"rank": r["rank"], "item_id": r["item_id"], "score": r["score"],
                      "contributions": {n: r[n] for n in names}, "method": r["method"],
                      **{c: r[c] for c in details}} for r in records]
        print(json.dumps(described, indent=2))
        return 0
    if not records:
        print(f"no recommendations for user {args.user}")
        return 0
    what = "attention weight" if records[0]["method"] == "attention" else \
        "score drop when the modality is replaced by its mean"
    print(f"user {args.user}: per-modality contribution ({what})")
    title_header = "  title" if "title" in details else ""
    print(f"{'rank':>4}  {'item':<16} {'score':>9}  " + "  ".join(f"{n:>10}" for n in names) + title_header)
    for r in records:
        values = "  ".join(f"{r[n]:>10.4f}" for n in names)
        title = f"  {r['title'] or ''}" if title_header else ""
        print(f"{r['rank']:>4}  {r['item_id']:<16} {r['score']:>9.4f}  {values}{title}".rstrip())
    return 0


# -- benchmark ---------------------------------------------------------------------------------------

def _add_benchmark(sub: Any) -> None:
    bench = sub.add_parser("benchmark", help="train several models with several seeds and compare them")
    bench.add_argument("--data", help="dataset folder or interactions file")
    bench.add_argument("--models", help="comma-separated model names")
    bench.add_argument("--seeds", type=int, default=3, help="number of seeds, 1..N (default 3)")
    bench.add_argument("--out", default="benchmark", metavar="DIR",
                       help="where runs and tables go (default benchmark)")
    bench.add_argument("--protocol", choices=("cold-items", "sparsity"),
                       help="item cold start (cold/warm/overall tasks) or training-data sparsity; see docs/cold-start.md")
    bench.add_argument("--fractions", default="0.1,0.25,0.5,1",
                       help="sparsity: fractions of each user's training interactions (default 0.1,0.25,0.5,1)")
    bench.add_argument("--render", action="store_true",
                       help="with --protocol: only rewrite the tables and chart from OUT/results.json")
    bench.add_argument("--collect", action="store_true",
                       help="with --protocol: train nothing; report the finished runs in OUT/runs (others: not run)")
    _config_arguments(bench)
    bench.set_defaults(handler=_benchmark)


def _benchmark(args: argparse.Namespace) -> int:
    from modalrec.api import benchmark

    if args.protocol:
        return _protocol_benchmark(args)
    if not args.data or not args.models:
        raise ModalrecError("benchmark: --data and --models are required")
    benchmark(Path(args.data), args.models.split(","), args.seeds, config=args.config, overrides=args.overrides,
              out=args.out)
    print((Path(args.out) / "results.md").read_text(encoding="utf-8"))  # the tables the call just wrote
    print(f"tables: {args.out}/results.md, results.csv, runs.csv; chart: {args.out}/results.png")
    return 0


def _protocol_benchmark(args: argparse.Namespace) -> int:
    import shlex

    from modalrec.api import benchmark_protocol

    out = Path(args.out)
    if args.render:
        _render_protocol(args.protocol, out)
    else:
        if not args.data or not args.models:
            raise ModalrecError("benchmark: --data and --models are required (or --render to redo the tables)")
        try:
            fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
        except ValueError:
            raise ModalrecError(f"benchmark: --fractions expects numbers like 0.1,0.5,1, got '{args.fractions}'") from None
        benchmark_protocol(Path(args.data), args.models.split(","), args.protocol, args.seeds, config=args.config,
                           overrides=args.overrides, out=out, fractions=fractions, collect=args.collect,
                           command="modalrec " + shlex.join(sys.argv[1:]))
    print((out / "results.md").read_text(encoding="utf-8"))  # the tables just written
    chart = ", sparsity.png" if args.protocol == "sparsity" else ""
    print(f"results: {out}/results.json; tables: {out}/results.md, results.csv, runs.csv{chart}")
    return 0


def _render_protocol(protocol: str, out: Path) -> None:
    """``--render``: rewrite the tables and chart from ``out/results.json`` alone (no model is loaded)."""
    from modalrec.experiments.protocols import read_results, render_report

    document = read_results(out)
    if document["protocol"] != protocol:
        raise ModalrecError(f"benchmark: {out}/results.json holds the {document['protocol']} protocol, "
                            f"not {protocol}")
    render_report(document, out)


# -- tune --------------------------------------------------------------------------------------------

def _add_tune(sub: Any) -> None:
    tune = sub.add_parser("tune", help="hyper-parameter search with Optuna on the validation split")
    tune.add_argument("--data", required=True, help="dataset folder or interactions file")
    tune.add_argument("--model", required=True, help="model name (see `modalrec models`)")
    tune.add_argument("--trials", type=int, default=20, help="number of trials (default 20)")
    tune.add_argument("--metric", default="recall@20", help="validation metric to maximise (default recall@20)")
    tune.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    tune.add_argument("--seed", type=seed_value, default=2024, help="seed of the sampler and of every trial (default 2024)")
    tune.add_argument("--out", default="tuning", metavar="DIR", help="trial log and the best run go here")
    _config_arguments(tune)
    tune.set_defaults(handler=_tune)


def _tune(args: argparse.Namespace) -> int:
    from modalrec.experiments.tune import tune

    result = tune(args.data, args.model, args.trials, Path(args.out), metric=args.metric, seed=args.seed,
                  config_file=args.config, overrides=args.overrides, timeout=args.timeout)
    print((Path(args.out) / "tuning.md").read_text())
    print(f"best run: {args.out}/best; trial log: {args.out}/trials.csv")
    return 0 if result.final.test else 1


# -- demo --------------------------------------------------------------------------------------------

def _add_demo(sub: Any) -> None:
    demo = sub.add_parser("demo", help="build the embedded shop dataset, train BPR, LightGCN, VBPR and ContentMF, compare")
    demo.add_argument("--out", default="modalrec-demo", metavar="DIR",
                      help="where data, runs and the picture go (default modalrec-demo)")
    demo.add_argument("--models", default="bpr,lightgcn,vbpr,contentmf",
                      help="comma-separated model names (default bpr,lightgcn,vbpr,contentmf)")
    demo.add_argument("--seed", type=seed_value, default=2024, help="seed of every run (default 2024)")
    demo.add_argument("--fast-features", action="store_true",
                      help="handcrafted image features and TF-IDF text features (seconds) instead of "
                           "EfficientNet-Lite0 and MiniLM (about a minute on 2 cores); the shop goes to DIR/data/shop-fast")
    _config_arguments(demo)
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from modalrec.api import run_demo

    print(run_demo(args.out, args.models.split(","), seed=args.seed, fast_features=args.fast_features,
                   config=args.config, overrides=args.overrides))
    return 0
