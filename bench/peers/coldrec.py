"""ColdRec's own code on an item cold-start split in its layout: cold / warm / overall test metrics per model.

Given a local ColdRec checkout (``--coldrec-src``; fetch it yourself, it is never part of this repository)
and a split folder in ColdRec's layout (``--split-dir DIR``: ``DIR/cold_item/{warm_train,warm_val,warm_test,
cold_item,cold_item_val,cold_item_test}.csv``, ``DIR/cold_item/n_user_item.pkl`` and
``DIR/<name>_item_content.npy``, as :func:`modalrec.data.coldrec.write_coldrec_split` writes it), or a
dataset to split here (``--make-split DATASET``, modalrec's item cold-start protocol with
``--cold-fraction`` and ``--split-seed``, exported with that function), this script

1. copies the split into a scratch ``data/<name>/`` folder and runs ColdRec's own ``data/convert.py`` on it
   (which adds ``overall_val.csv``, ``overall_test.csv`` and ``info_dict.pkl``);
2. trains ColdRec's backbone (``--backbone``, default MF) once when a model needs its embeddings
   (DropoutNet, Heater, GAR, ALDI load ``emb/<name>_cold_item_<backbone>_*_emb.pt``);
3. runs ``main.py --model M`` for each model and seed, on the CPU with ``--threads`` threads, through
   ``peer_main.py`` (the runtime shims, no edits to ColdRec), with ColdRec's default hyper-parameters unless
   ``--extra`` adds flags;
4. reads the machine-readable block of ColdRec's result file and writes ``results.json`` and
   ``coldrec.md`` (cold / warm / overall recall@20 and ndcg@20, seconds per epoch, wall seconds, peak RSS,
   load average) to ``--out``.

    .venv/bin/python bench/peers/coldrec.py --coldrec-src /work/peers/ColdRec \\
        --make-split ../shared/datasets/ml100k-posters/mmrec --models dropoutnet,heater,clcrec,gar,aldi
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from processes import last_line, wait_child

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

COLDREC_NAMES = {"mf": "MF", "lightgcn": "LightGCN", "dropoutnet": "DropoutNet", "heater": "Heater",
                 "clcrec": "CLCRec", "gar": "GAR", "aldi": "ALDI", "knn": "KNN", "deepmusic": "DeepMusic",
                 "metaembedding": "MetaEmbedding", "vbpr": "VBPR", "lara": "LARA", "mtpr": "MTPR",
                 "ccfcrec": "CCFCRec"}
NEEDS_BACKBONE = {"DropoutNet", "Heater", "GAR", "ALDI", "KNN", "MetaEmbedding"}
JSON_MARKER = "--- JSON (machine-readable) ---"
TASKS = {"cold": "cold", "warm": "warm", "overall": "all"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coldrec-src", required=True, help="a local ColdRec checkout (the folder with main.py)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--split-dir", help="a split in ColdRec's layout (holds cold_item/ and <name>_item_content.npy)")
    source.add_argument("--make-split", help="a dataset modalrec reads; split here with --cold-fraction")
    parser.add_argument("--cold-fraction", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=2024)
    parser.add_argument("--name", default=None, help="ColdRec's dataset name (default: the split folder's name)")
    parser.add_argument("--models", default="dropoutnet,heater,clcrec,gar,aldi")
    parser.add_argument("--backbone", default="MF", help="ColdRec's warm model whose embeddings others refine")
    parser.add_argument("--seeds", default="2024", help="comma-separated; ColdRec's --seed, one run each")
    parser.add_argument("--epochs", type=int, default=None, help="ColdRec's --epochs (default: its own, 500)")
    parser.add_argument("--backbone-epochs", type=int, default=None,
                        help="the backbone's --epochs (default: ColdRec's own, with its early stopping)")
    parser.add_argument("--content", choices=("standardized", "raw"), default="standardized",
                        help="the item content ColdRec reads: each modality standardised as modalrec's content "
                             "models do by default (columns centred, rows scaled to unit average L2 norm), then "
                             "side by side; or the split's content file as it is")
    parser.add_argument("--backbone-from", default=None,
                        help="an earlier --out folder of the same split and name: reuse its backbone embeddings")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--extra", default="", help="more ColdRec flags for every model, e.g. '--bs 2048'")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per ColdRec model run")
    parser.add_argument("--backbone-timeout", type=float, default=None, help="seconds allowed for the backbone")
    parser.add_argument("--out", default=None, help="output folder (default runs/peers/coldrec-<time>)")
    return parser.parse_args(argv)


def make_split(dataset: str, fraction: float, seed: int, out: Path) -> Path:
    """modalrec's item cold-start split of ``dataset``, written in ColdRec's layout under ``out``."""
    from modalrec.config import DataConfig
    from modalrec.data.coldrec import write_coldrec_split
    from modalrec.data.prepare import prepare_data

    prepared = prepare_data(dataset, DataConfig(cold_item_fraction=fraction, split_seed=seed))
    write_coldrec_split(prepared.dataset, prepared.split, out, out.name)
    return out


def standardize(table: np.ndarray) -> np.ndarray:
    """Columns centred, rows scaled to unit average L2 norm (``modalrec.nn.content.standardize``, in numpy)."""
    centred = table - table.mean(0, keepdims=True)
    return (centred / max(float(np.linalg.norm(centred, axis=1).mean()), 1e-12)).astype(np.float32)


def content_table(folder: Path, how: str) -> np.ndarray:
    """The item content ColdRec will read: the split's content file, or its modalities standardised."""
    combined = sorted(folder.glob("*_item_content.npy"))
    modalities = sorted(folder.glob("*_feat.npy"))
    if how == "raw" or not modalities:
        if not combined:
            raise SystemExit(f"{folder}: no <name>_item_content.npy (the item content ColdRec reads)")
        table = np.load(combined[0]).astype(np.float32)
        return table if how == "raw" else standardize(table)
    return np.concatenate([standardize(np.load(f).astype(np.float32)) for f in modalities], axis=1)


def stage(split_dir: Path, name: str, coldrec: Path, work: Path, env: dict[str, str], log: Path,
          content: str) -> None:
    """``work/data/<name>`` = a copy of the split, completed by ColdRec's own ``data/convert.py``."""
    target = work / "data" / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(split_dir, target)
    np.save(target / f"{name}_item_content.npy", content_table(split_dir, content))
    (work / "emb").mkdir(exist_ok=True)
    with log.open("w") as sink:
        done = subprocess.run([sys.executable, str(HERE / "peer_main.py"), str(coldrec / "data" / "convert.py"),
                               "--dataset", name, "--datadir", str(work / "data"), "--cold_object", "item"],
                              cwd=work, env=env, stdout=sink, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"ColdRec's convert.py failed on {target}; see {log}")


def run_model(coldrec: Path, work: Path, name: str, model: str, seed: int, args: argparse.Namespace,
              env: dict[str, str], log: Path, epochs: int | None, timeout: float | None) -> dict[str, Any]:
    result_file = work / "result" / f"{model}-{seed}.txt"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, str(HERE / "peer_main.py"), str(coldrec / "main.py"), "--dataset", name,
               "--model", model, "--cold_object", "item", "--use_gpu", "false", "--seed", str(seed),
               "--backbone", args.backbone, "--result_file", str(result_file), "--result_overwrite"]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    command += shlex.split(args.extra)
    record: dict[str, Any] = {"model": model, "seed": seed, "command": " ".join(shlex.quote(c) for c in command[2:]),
                              "load_before": list(os.getloadavg())}
    start = time.perf_counter()
    with log.open("w") as sink:
        child = subprocess.Popen(command, cwd=work, env=env, stdout=sink, stderr=subprocess.STDOUT)
        status, usage = wait_child(child, timeout)
    record.update(wall_s=time.perf_counter() - start, load_after=list(os.getloadavg()),
                  peak_rss_mib=usage.ru_maxrss / 1024 if usage is not None else None, returncode=status)
    if status == 0 and result_file.is_file():
        record["metrics"] = parse_result_file(result_file.read_text())
    else:
        record["error"] = "timed out" if status is None else f"exit {status}: {last_line(log)}"
    return record


def parse_result_file(text: str) -> dict[str, Any]:
    """Cold / warm / overall recall and ndcg at each cut-off, and seconds per epoch, from ColdRec's result file.

    Returns ``{"cold": {"recall@20": .., "ndcg@20": .., ...}, "warm": {..}, "overall": {..},
    "seconds_per_epoch": ..}``; the last run block of the file counts.
    """
    if JSON_MARKER not in text:
        raise ValueError("no machine-readable block in the ColdRec result file")
    block = json.loads(text.rsplit(JSON_MARKER, 1)[1].split("\n" + "=" * 80, 1)[0])
    parsed: dict[str, Any] = {task: {} for task in TASKS}
    for top_n, settings in block["metrics"].items():
        for task, key in TASKS.items():
            for metric in ("Recall", "NDCG", "Precision", "Hit"):
                parsed[task][f"{metric.lower()}@{top_n}"] = settings[key][metric]["mean"]
    parsed["seconds_per_epoch"] = block.get("efficiency", {}).get("seconds_per_completed_epoch_mean")
    parsed["hyperparameters"] = block.get("hyperparameters", {})
    return parsed


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model: mean and std over seeds of each task's recall@20 and ndcg@20."""
    rows = []
    for model in dict.fromkeys(r["model"] for r in records):
        done = [r for r in records if r["model"] == model and "metrics" in r]
        failed = [r for r in records if r["model"] == model and "error" in r]
        row: dict[str, Any] = {"model": model, "runs": len(done), "failed": [r["error"] for r in failed]}
        for task in TASKS:
            for metric in ("recall@20", "ndcg@20"):
                values = [r["metrics"][task].get(metric) for r in done if r["metrics"][task].get(metric) is not None]
                row[f"{task} {metric}"] = (statistics.mean(values) if values else None,
                                           statistics.pstdev(values) if len(values) > 1 else 0.0)
        row["s/epoch"] = statistics.mean([r["metrics"]["seconds_per_epoch"] for r in done
                                          if r["metrics"].get("seconds_per_epoch")] or [0.0]) or None
        row["wall_s"] = statistics.mean([r["wall_s"] for r in done] or [0.0]) or None
        row["peak_rss_mib"] = max([r.get("peak_rss_mib") or 0.0 for r in done] or [0.0]) or None
        rows.append(row)
    return rows


def render_markdown(results: dict[str, Any], source: str = "results.json") -> str:
    loads = [r[k][0] for r in results["runs"] for k in ("load_before", "load_after") if r.get(k)]
    lines = ["# ColdRec's own code on the same item cold-start split", "",
             f"Generated by `bench/peers/coldrec.py` into `{source}`; do not edit by hand.", "",
             f"- measured: {results['date']} on {results['cpus']} CPU cores, {results['threads']} thread(s), "
             f"ColdRec commit {results['coldrec_commit']}, modalrec commit {results['modalrec_commit']}",
             f"- split: `{results['split']}` ({results['split_note']})",
             "- item content: " + ("each modality standardised (columns centred, rows scaled to unit average L2 "
                                   "norm, as modalrec's content models do), then side by side"
                                   if results.get("content") == "standardized" else "the split's content file as it is"),
             f"- ColdRec's default hyper-parameters; backbone {results['backbone']}"
             + (f" (embeddings reused from `{results['backbone_from']}`)" if results.get("backbone_from") else "")
             + f"; seeds {results['seeds']}"
             + (f"; at most {results['epochs']} epochs" if results.get("epochs") else "")
             + (f", backbone at most {results['backbone_epochs']}" if results.get("backbone_epochs") else "")
             + (f"; extra flags `{results['extra']}`" if results.get("extra") else ""),
             "- 1-minute load average around the runs: "
             + (f"{min(loads):.2f}-{max(loads):.2f}" if loads else "not recorded"),
             f"- command: `{results['command']}`", ""]
    if results.get("skipped"):
        lines += ["- skipped: " + "; ".join(f"{m}: {why}" for m, why in results["skipped"].items()), ""]
    lines += ["| model | runs | cold R@20 | cold N@20 | warm R@20 | warm N@20 | overall R@20 | overall N@20 | "
              "s/epoch | wall s | peak RSS MiB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in summarize(results["runs"]):
        cells = [_mean_std(row[f"{task} {metric}"]) for task in TASKS for metric in ("recall@20", "ndcg@20")]
        note = f" (failed: {'; '.join(row['failed'])})" if row["failed"] else ""
        lines.append(f"| {row['model']}{note} | {row['runs']} | " + " | ".join(cells)
                     + f" | {_num(row['s/epoch'])} | {_num(row['wall_s'], 0)} | {_num(row['peak_rss_mib'], 0)} |")
    return "\n".join(lines) + "\n"


def _mean_std(pair: tuple[float | None, float]) -> str:
    mean, std = pair
    if mean is None:
        return "-"
    return f"{mean:.4f}" if not std else f"{mean:.4f} ± {std:.4f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _commit(folder: Path) -> str:
    done = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    coldrec = Path(args.coldrec_src).resolve()
    stamp = datetime.datetime.now(datetime.timezone.utc)
    out = Path(args.out or REPO / "runs" / "peers" / f"coldrec-{stamp:%Y%m%d-%H%M%S}").resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    if args.make_split:
        name = args.name or "split"
        split_dir = make_split(args.make_split, args.cold_fraction, args.split_seed, out / name)
        note = f"modalrec's item cold-start split of {args.make_split}, {args.cold_fraction:g} cold items, seed {args.split_seed}"
    else:
        split_dir = Path(args.split_dir).resolve()
        name = args.name or split_dir.name
        note = "given"
    results: dict[str, Any] = {
        "harness": "bench/peers/coldrec.py", "date": f"{stamp:%Y-%m-%d %H:%M} UTC", "cpus": os.cpu_count(),
        "threads": args.threads, "coldrec_commit": _commit(coldrec), "modalrec_commit": _commit(REPO),
        "split": str(split_dir), "split_note": note, "backbone": args.backbone, "seeds": args.seeds,
        "epochs": args.epochs, "backbone_epochs": args.backbone_epochs, "extra": args.extra,
        "content": args.content,
        "command": " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "skipped": {}, "runs": []}
    if not (coldrec / "main.py").is_file():
        raise SystemExit(f"no ColdRec checkout at {coldrec} (expected main.py)")
    stage(split_dir, name, coldrec, work, env, out / "logs" / "convert.log", args.content)
    models = []
    for model in (m.strip() for m in args.models.split(",") if m.strip()):
        peer = COLDREC_NAMES.get(model.lower())
        if peer is None or not (coldrec / "model" / f"{peer}.py").is_file():
            results["skipped"][model] = f"ColdRec has no model matching '{model}'"
            continue
        models.append(peer)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.backbone_from:
        pattern = f"{name}_cold_item_{args.backbone}_*_emb.pt"
        reused = sorted((Path(args.backbone_from) / "work" / "emb").glob(pattern))
        if not reused:
            raise SystemExit(f"{args.backbone_from}: no work/emb/{pattern} to reuse")
        for file in reused:
            shutil.copy(file, work / "emb" / file.name)
        results["backbone_from"] = str(Path(args.backbone_from).resolve())
    elif any(m in NEEDS_BACKBONE for m in models):
        for seed in seeds[:1]:  # the embeddings file has no seed in its name: one backbone serves every seed
            record = run_model(coldrec, work, name, args.backbone, seed, args, env, out / "logs" / "backbone.log",
                               args.backbone_epochs, args.backbone_timeout)
            record["role"] = "backbone"
            results["runs"].append(record)
            _write(results, out)
            if "error" in record:
                raise SystemExit(f"the backbone {args.backbone} failed ({record['error']}); see {out / 'logs'}")
            print(f"backbone {args.backbone}: {record.get('error') or 'done'} in {record['wall_s']:.0f} s",
                  file=sys.stderr)
    for model in models:
        for seed in seeds:
            record = run_model(coldrec, work, name, model, seed, args, env, out / "logs" / f"{model}-{seed}.log",
                               args.epochs, args.timeout)
            results["runs"].append(record)
            _write(results, out)
            brief = record.get("error") or {t: round(record["metrics"][t]["recall@20"], 4) for t in TASKS}
            print(f"{model} seed {seed}: {brief} in {record['wall_s']:.0f} s", file=sys.stderr)
    _write(results, out)
    print(f"wrote {out / 'results.json'} and {out / 'coldrec.md'}", file=sys.stderr)


def _write(results: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "coldrec.md").write_text(render_markdown(results, source=str(out / "results.json")))


if __name__ == "__main__":
    main()
