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
3. runs ``main.py --model M`` for each model and seed, on the CPU with ``--threads`` threads, with the
   runtime shims of ``peer_main.py`` and no edits to ColdRec, with ColdRec's default hyper-parameters unless
   ``--extra`` adds flags;
4. after each of ColdRec's validation passes, ranks what its trainer would rank at that moment
   (``batch_predict``, the scores ColdRec evaluates) with modalrec's own evaluator on modalrec's cold / warm /
   overall tasks (:class:`ProtocolObserver`; it only reads, so training is unchanged), one JSON line per epoch
   in ``logs/<model>-<seed>.protocol.jsonl``;
5. reads the machine-readable block of ColdRec's result file and writes ``results.json`` and
   ``coldrec.md`` to ``--out``: ColdRec's own cold / warm / overall recall@20 and ndcg@20, the same models
   under modalrec's protocol (each task at the epoch its own validation recall@20 chose), seconds per
   epoch, wall seconds, peak RSS, load average.

The two protocols differ (see ``docs/benchmarks/peers.md``): ColdRec's cold task ranks every item without
a training interaction (the cold-valid and the cold-test items together), its overall task counts only the
users with both cold and warm test items, and all three tasks are tested at one epoch, chosen by overall
validation ndcg@20.

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
# modalrec's tasks evaluated after each ColdRec validation: name -> (task, eval.cold_candidates)
PROTOCOL_TASKS = {"cold": ("cold", "split"), "cold_all": ("cold", "all"), "warm": ("warm", "split"),
                  "overall": ("overall", "split")}
PROTOCOL_METRICS = ("recall@20", "ndcg@20")
UNRANKED = -1e30  # the score of an item ColdRec's id table lacks (no interaction in any of its files)
DEADLINE_ENV = "COLDREC_TRAIN_DEADLINE"  # Unix time by which the observed child must end training


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
    parser.add_argument("--model-epochs", default="",
                        help="per-model --epochs over --epochs, e.g. 'clcrec=5,heater=100'")
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
    parser.add_argument("--model-seconds", default="",
                        help="per-model training budget in seconds, e.g. 'heater=600': after the epoch that "
                             "the next one would overrun, training stops and ColdRec tests its best epoch")
    parser.add_argument("--stop-at", default=None, metavar="HH:MM",
                        help="UTC time of day by which training must end, as --model-seconds does; runs that "
                             "would start later are skipped, and a run still going --grace seconds later is killed")
    parser.add_argument("--grace", type=float, default=300.0,
                        help="seconds a run may go on past its training budget (its last epoch, the tests)")
    parser.add_argument("--out", default=None, help="output folder (default runs/peers/coldrec-<time>)")
    return parser.parse_args(argv)


def make_split(dataset: str, fraction: float, seed: int, out: Path) -> tuple[Path, str]:
    """modalrec's item cold-start split of ``dataset``, written in ColdRec's layout under ``out``, and what
    :func:`compare_splits` says of the files read back."""
    from modalrec.config import DataConfig
    from modalrec.data.coldrec import write_coldrec_split
    from modalrec.data.prepare import prepare_data

    prepared = prepare_data(dataset, DataConfig(cold_item_fraction=fraction, split_seed=seed))
    write_coldrec_split(prepared.dataset, prepared.split, out, out.name)
    read_back = prepare_data(out, DataConfig(format="coldrec")).split
    return out, compare_splits(prepared.split, read_back)


def compare_splits(ours: Any, exported: Any) -> str:
    """Raises SystemExit unless ``exported`` (the ColdRec files read back) has exactly the training, validation
    and test pairs and the cold-valid / cold-test items of ``ours``; else a line that says what was checked."""
    from modalrec.data.split import COLD_TEST, COLD_VALID

    if (ours.num_users, ours.num_items) != (exported.num_users, exported.num_items):
        raise SystemExit(f"the exported split has {exported.num_users} users and {exported.num_items} items; "
                         f"ours has {ours.num_users} and {ours.num_items}")
    sizes = []
    for part in ("train", "valid", "test"):
        if (ours.matrix(part) != exported.matrix(part)).nnz:
            raise SystemExit(f"the exported split's {part} pairs differ from ours")
        sizes.append(f"{ours.matrix(part).nnz} {part}")
    if not np.array_equal(ours.item_roles, exported.item_roles):
        raise SystemExit("the exported split's cold items differ from ours")
    no_train = np.bincount(ours.train.items, minlength=ours.num_items) == 0
    warm_untrained = int((no_train & (ours.item_roles == 0)).sum())
    return (f"read back identical: {', '.join(sizes)} pairs, {int((ours.item_roles == COLD_VALID).sum())} cold-valid "
            f"and {int((ours.item_roles == COLD_TEST).sum())} cold-test items, {warm_untrained} warm items without "
            "a training pair")


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
              env: dict[str, str], log: Path, epochs: int | None, timeout: float | None,
              budget: float | None = None) -> dict[str, Any]:
    """One ColdRec run; ``budget``: seconds of training before the observer stops it after an epoch (the
    run is killed ``args.grace`` seconds later), ``timeout``: seconds before it is killed in any case."""
    result_file = work / "result" / f"{model}-{seed}.txt"
    result_file.unlink(missing_ok=True)
    protocol_log = log.with_suffix(".protocol.jsonl")
    protocol_log.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--observe", str(protocol_log),
               str(work / "data" / name), str(coldrec / "main.py"), "--dataset", name,
               "--model", model, "--cold_object", "item", "--use_gpu", "false", "--seed", str(seed),
               "--backbone", args.backbone, "--result_file", str(result_file), "--result_overwrite"]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    command += shlex.split(args.extra)
    record: dict[str, Any] = {"model": model, "seed": seed, "command": " ".join(shlex.quote(c) for c in command[5:]),
                              "epochs_cap": epochs, "budget_s": budget, "load_before": list(os.getloadavg())}
    if budget is not None:
        env = {**env, DEADLINE_ENV: str(time.time() + budget)}
        timeout = budget + args.grace if timeout is None else min(timeout, budget + args.grace)
    record["timeout_s"] = timeout
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
    entries = [json.loads(line) for line in protocol_log.read_text().splitlines()] if protocol_log.is_file() else []
    if entries:
        record["protocol"] = protocol_summary(entries)
    return record


# ---------------------------------------------------------------------------------------------
# modalrec's protocol on ColdRec's trainers

class ProtocolObserver:
    """modalrec's evaluation of whatever a ColdRec trainer ranks, in ColdRec's own process.

    ColdRec's trainers set their current vectors before each validation pass and rank with
    ``batch_predict(users)``: (len(users), item_num) scores whose columns follow ColdRec's own item index
    (``data.item`` maps our item id, the id in its files, to it). :meth:`record` scores every user that way,
    puts the columns back in our item order, and measures each task of :data:`PROTOCOL_TASKS` on validation
    and test with ``modalrec.evaluate.tasks.task_evaluator``, on the split read back from ColdRec's files.
    It draws no random numbers and changes no state of the trainer, so ColdRec trains as it would alone.
    """

    def __init__(self, split_dir: Path, log: Path) -> None:
        from modalrec.config import DataConfig, EvalConfig
        from modalrec.data.prepare import prepare_data
        from modalrec.evaluate.evaluator import JointEvaluator
        from modalrec.evaluate.tasks import task_evaluator

        split = prepare_data(split_dir, DataConfig(format="coldrec")).split
        self.num_users, self.num_items = split.num_users, split.num_items
        evaluators = {f"{name}/{part}": task_evaluator(split, EvalConfig(ks=(20,), cold_candidates=candidates),
                                                       task, part)
                      for name, (task, candidates) in PROTOCOL_TASKS.items() for part in ("valid", "test")}
        self.evaluator = JointEvaluator(evaluators)
        self.log = log
        deadline = os.environ.get(DEADLINE_ENV)
        self.deadline = float(deadline) if deadline else None
        self.last = time.time()

    def scores(self, trainer: Any) -> Any:
        """(num_users, num_items) scores in our ids; users and items ColdRec does not know get UNRANKED."""
        import torch

        return scores_in_our_order(trainer.batch_predict, trainer.data.user, trainer.data.item,
                                   self.num_users, self.num_items, torch)

    def record(self, trainer: Any, epoch: int) -> None:
        start = time.perf_counter()
        full = self.scores(trainer)
        tables = self.evaluator.evaluate(lambda users: full[users])
        best = trainer.bestPerformance[0] if trainer.bestPerformance else None
        entry = {"epoch": epoch + 1, "coldrec_best_epoch": best,
                 "metrics": {name: {m: table.mean()[m] for m in PROTOCOL_METRICS} for name, table in tables.items()},
                 "seconds": round(time.perf_counter() - start, 3)}
        now = time.time()
        if self.deadline is not None and now + (now - self.last) > self.deadline:
            # the next epoch would end past the budget: stop as ColdRec's own early stopping does
            trainer.early_stop_flag, trainer.early_stop_patience = True, 0
            entry["stopped"] = "training budget"
        self.last = now
        with self.log.open("a") as sink:
            sink.write(json.dumps(entry) + "\n")


def scores_in_our_order(batch_predict: Any, user_index: dict[int, int], item_index: dict[int, int],
                        num_users: int, num_items: int, torch: Any) -> Any:
    """``batch_predict``'s scores of every known user, with rows and columns in our user and item ids."""
    users = [u for u in range(num_users) if u in user_index]
    ours = torch.tensor([i for i in item_index if i < num_items], dtype=torch.long)
    theirs = torch.tensor([item_index[i] for i in item_index if i < num_items], dtype=torch.long)
    scores = torch.as_tensor(batch_predict(users)).detach().float().cpu()
    full = torch.full((num_users, num_items), UNRANKED)
    full[torch.tensor(users, dtype=torch.long)[:, None], ours[None, :]] = scores[:, theirs]
    return full


def protocol_summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task of :data:`PROTOCOL_TASKS`: the test metrics at the epoch its own validation recall@20 chose
    (the first best, as modalrec's early stopping keeps it) and at the epoch ColdRec chose."""
    coldrec_epoch = entries[-1]["coldrec_best_epoch"]
    at_coldrec = next((e for e in entries if e["epoch"] == coldrec_epoch), None)
    summary: dict[str, Any] = {"epochs_ran": entries[-1]["epoch"], "coldrec_epoch": coldrec_epoch,
                               "stopped_by_budget": any(e.get("stopped") for e in entries),
                               "observer_s": round(sum(e.get("seconds", 0.0) for e in entries), 1)}
    for name in PROTOCOL_TASKS:
        chosen = max(entries, key=lambda e: (e["metrics"][f"{name}/valid"]["recall@20"], -e["epoch"]))
        summary[name] = {"epoch": chosen["epoch"], "valid": chosen["metrics"][f"{name}/valid"],
                         "test": chosen["metrics"][f"{name}/test"],
                         "test_at_coldrec_epoch": at_coldrec["metrics"][f"{name}/test"] if at_coldrec else None}
    return summary


def observe_main(argv: list[str]) -> None:
    """``coldrec.py --observe LOG SPLIT_DIR SCRIPT [ARGS...]``: ``peer_main.py``'s run of SCRIPT, with a
    :class:`ProtocolObserver` called after each of ColdRec's validation passes."""
    import runpy

    import shims
    import torch

    log, split_dir, script = Path(argv[0]), Path(argv[1]), Path(argv[2]).resolve()
    applied = shims.apply()
    print(f"bench/peers shims applied: {', '.join(applied) or 'none'}", file=sys.stderr, flush=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    sys.path.insert(0, str(script.parent))
    from model.BaseRecommender import BaseColdStartTrainer  # ColdRec's, from its checkout

    observer = ProtocolObserver(split_dir, log)
    validate = BaseColdStartTrainer.fast_evaluation

    def observed(self: Any, epoch: int, valid_type: str = "all") -> Any:
        measure = validate(self, epoch, valid_type)
        observer.record(self, epoch)
        return measure

    BaseColdStartTrainer.fast_evaluation = observed
    sys.argv = [str(script), *argv[3:]]
    runpy.run_path(str(script), run_name="__main__")


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
    lines = ["## ColdRec's own code on the same item cold-start split", "",
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
    lines += ["### As ColdRec evaluates", "",
              "ColdRec's own test metrics from its result file: one epoch for all three tasks, chosen by overall "
              "validation ndcg@20; the cold task ranks every item without a training pair (cold-valid and "
              "cold-test items together); the overall task counts the users with both cold and warm test items.",
              "", "| model | runs | cold R@20 | cold N@20 | warm R@20 | warm N@20 | overall R@20 | overall N@20 | "
              "s/epoch | wall s | peak RSS MiB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in summarize(results["runs"]):
        cells = [_mean_std(row[f"{task} {metric}"]) for task in TASKS for metric in ("recall@20", "ndcg@20")]
        note = f" (failed: {'; '.join(row['failed'])})" if row["failed"] else ""
        lines.append(f"| {row['model']}{note} | {row['runs']} | " + " | ".join(cells)
                     + f" | {_num(row['s/epoch'])} | {_num(row['wall_s'], 0)} | {_num(row['peak_rss_mib'], 0)} |")
    observed = summarize_protocol(results["runs"])
    if observed:
        lines += ["", "### As modalrec evaluates", "",
                  "The same runs, ranked by modalrec's evaluator (`modalrec.evaluate.tasks`, default `eval` settings) "
                  "from ColdRec's own scores after every epoch: the cold task ranks the cold items of the part "
                  "(cold-test items for test), the overall task counts every user with a test item, and each task "
                  "is tested at the epoch its own validation recall@20 chose, among the epochs ColdRec trained "
                  "(its early stopping on overall validation ndcg@20, patience 10). "
                  "Epochs: mean number trained; `budget` counts the runs whose training was stopped by "
                  "`--model-seconds`/`--stop-at` (ColdRec then tested its best epoch so far).", "",
                  "| model | runs | epochs | budget | cold R@20 | cold N@20 | warm R@20 | warm N@20 | overall R@20 | "
                  "overall N@20 | epochs chosen (cold/warm/overall) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in observed:
            cells = [_mean_std(row[f"{task} {metric}"]) for task in ("cold", "warm", "overall")
                     for metric in PROTOCOL_METRICS]
            lines.append(f"| {row['model']} | {row['runs']} | {row['epochs']:.0f} | {row['budget']} | "
                         + " | ".join(cells) + f" | {row['chosen']} |")
        lines += ["", "Where the two protocols part, test recall@20 at the epoch ColdRec chose (mean over the runs "
                  "that finished): ColdRec's own figure, then modalrec's evaluator with ColdRec's cold candidates "
                  "(every cold item; ColdRec also ranks the warm items without a training pair) and with "
                  "modalrec's (the part's cold items), ColdRec's and modalrec's overall users.", "",
                  "| model | ColdRec cold | all cold items | cold-test items | ColdRec warm | warm | ColdRec overall | "
                  "overall, every test user |", "|---|---|---|---|---|---|---|---|"]
        for row in observed:
            lines.append(f"| {row['model']} | " + " | ".join(_num(row['at'].get(key), 4) for key in (
                "coldrec cold", "cold_all", "cold", "coldrec warm", "warm", "coldrec overall", "overall")) + " |")
    return "\n".join(lines) + "\n"


def summarize_protocol(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model, over the runs with an observer log: mean and std of each task's test metrics at the epoch
    its validation chose, the epochs trained and chosen, and (``at``) recall@20 at ColdRec's chosen epoch."""
    rows = []
    for model in dict.fromkeys(r["model"] for r in records if r.get("protocol")):
        runs = [r for r in records if r["model"] == model and r.get("protocol")]
        row: dict[str, Any] = {"model": model, "runs": len(runs),
                               "epochs": statistics.mean(r["protocol"]["epochs_ran"] for r in runs),
                               "budget": sum(bool(r["protocol"].get("stopped_by_budget")) for r in runs)}
        for task in PROTOCOL_TASKS:
            for metric in PROTOCOL_METRICS:
                values = [r["protocol"][task]["test"][metric] for r in runs]
                row[f"{task} {metric}"] = (statistics.mean(values), statistics.pstdev(values) if len(values) > 1 else 0.0)
        row["chosen"] = ", ".join("/".join(str(r["protocol"][t]["epoch"]) for t in ("cold", "warm", "overall"))
                                  for r in runs)
        finished = [r for r in runs if "metrics" in r]
        at: dict[str, float] = {}
        if finished:
            for task in PROTOCOL_TASKS:
                values = [r["protocol"][task]["test_at_coldrec_epoch"]["recall@20"] for r in finished
                          if r["protocol"][task]["test_at_coldrec_epoch"]]
                if values:
                    at[task] = statistics.mean(values)
            for task in TASKS:
                at[f"coldrec {task}"] = statistics.mean(r["metrics"][task]["recall@20"] for r in finished)
        row["at"] = at
        rows.append(row)
    return rows


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


def per_model(flag: str, spec: str, models: list[str]) -> dict[str, int]:
    """``--model-epochs 'clcrec=5'`` as ``{"CLCRec": 5}`` (and so for ``--model-seconds``)."""
    caps = {}
    for item in (part.strip() for part in spec.split(",") if part.strip()):
        model, _, value = item.partition("=")
        peer = COLDREC_NAMES.get(model.strip().lower())
        if peer is None or not value.strip().isdigit():
            raise SystemExit(f"{flag}: expected MODEL=NUMBER for one of {', '.join(COLDREC_NAMES)}, got '{item}'")
        if peer not in models:
            raise SystemExit(f"{flag}: {model} is not among --models")
        caps[peer] = int(value)
    return caps


def seconds_left(stop_at: str | None, now: datetime.datetime) -> float | None:
    """Seconds from ``now`` to the UTC time of day ``stop_at`` (HH:MM) of the same day; None without one."""
    if stop_at is None:
        return None
    hour, _, minute = stop_at.partition(":")
    if not (hour.isdigit() and minute.isdigit()):
        raise SystemExit(f"--stop-at: expected HH:MM (UTC), got '{stop_at}'")
    stop = now.replace(hour=int(hour), minute=int(minute), second=0, microsecond=0)
    return (stop - now).total_seconds()


def run_budget(budget: float | None, stop_at: str | None, epoch_s: float = 0.0) -> tuple[bool, float | None]:
    """(whether a run may start, its training budget): ``budget`` shortened to end by ``--stop-at``. A run
    starts only with 60 s and ``epoch_s`` (an epoch of the model's previous run) left before then."""
    left = seconds_left(stop_at, datetime.datetime.now(datetime.timezone.utc))
    if left is None:
        return True, budget
    if left < 60 + epoch_s:
        return False, None
    return True, left if budget is None else min(budget, left)


def main(argv: list[str] | None = None) -> None:
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == ["--observe"]:
        observe_main(raw[1:])
        return
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
        split_dir, check = make_split(args.make_split, args.cold_fraction, args.split_seed, out / name)
        note = (f"modalrec's item cold-start split of {args.make_split}, {args.cold_fraction:g} cold items, "
                f"seed {args.split_seed}; {check}")
    else:
        split_dir = Path(args.split_dir).resolve()
        name = args.name or split_dir.name
        note = "given"
    results: dict[str, Any] = {
        "harness": "bench/peers/coldrec.py", "date": f"{stamp:%Y-%m-%d %H:%M} UTC", "cpus": os.cpu_count(),
        "threads": args.threads, "coldrec_commit": _commit(coldrec), "modalrec_commit": _commit(REPO),
        "split": str(split_dir), "split_note": note, "backbone": args.backbone, "seeds": args.seeds,
        "epochs": args.epochs, "backbone_epochs": args.backbone_epochs, "extra": args.extra,
        "content": args.content, "model_epochs": args.model_epochs, "model_seconds": args.model_seconds,
        "stop_at": args.stop_at,
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
    caps = per_model("--model-epochs", args.model_epochs, models)
    budgets = per_model("--model-seconds", args.model_seconds, models)
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
            _, budget = run_budget(None, args.stop_at)
            record = run_model(coldrec, work, name, args.backbone, seed, args, env, out / "logs" / "backbone.log",
                               args.backbone_epochs, args.backbone_timeout, budget)
            record["role"] = "backbone"
            results["runs"].append(record)
            _write(results, out)
            if "error" in record:
                raise SystemExit(f"the backbone {args.backbone} failed ({record['error']}); see {out / 'logs'}")
            print(f"backbone {args.backbone}: {record.get('error') or 'done'} in {record['wall_s']:.0f} s",
                  file=sys.stderr)
    for model in models:
        for seed in seeds:
            earlier = [r for r in results["runs"] if r["model"] == model and r.get("protocol")]
            epoch_s = earlier[-1]["wall_s"] / earlier[-1]["protocol"]["epochs_ran"] if earlier else 0.0
            may_start, budget = run_budget(budgets.get(model), args.stop_at, epoch_s)
            if not may_start:
                results["skipped"][f"{model} seed {seed}"] = f"not started: past --stop-at {args.stop_at} UTC"
                continue
            record = run_model(coldrec, work, name, model, seed, args, env, out / "logs" / f"{model}-{seed}.log",
                               caps.get(model, args.epochs), args.timeout, budget)
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
