"""``modalrec demo``: build the embedded shop, train several models on it and print a leaderboard."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from modalrec.data.demo_shop import ShopConfig, build_demo_dataset
from modalrec.evaluate.cold import cold_item_evaluator
from modalrec.train.run import LoadedRun, configure_threads, load_run, resolve_config, train_run

log = logging.getLogger(__name__)

FAST_SHOP = ShopConfig(image_extractor="handcrafted", text_extractor="tfidf")
"""The demo shop with features that take seconds (``modalrec demo --fast-features``)."""


@dataclass(frozen=True)
class LeaderboardRow:
    model: str
    recall: float
    ndcg: float
    cold_recall: float
    train_seconds: float
    best_epoch: int
    run_dir: Path


def run_demo(
    out: Path,
    models: list[str],
    *,
    seed: int = 2024,
    overrides: list[str] | None = None,
    config_file: str | None = None,
    shop: ShopConfig | None = None,
) -> str:
    """Generate the shop under ``out/data``, train each model into ``out/runs/<model>``; return the table.

    ``shop`` is the generator's config: the default one goes to ``out/data/shop``, :data:`FAST_SHOP` to
    ``out/data/shop-fast``, any other to ``out/data/shop-custom``.
    """
    configure_threads(0)  # $OMP_NUM_THREADS or 1 thread: the fast choice on a shared 2-core machine
    shop = shop or ShopConfig()
    folder = {ShopConfig(): "shop", FAST_SHOP: "shop-fast"}.get(shop, "shop-custom")
    data_dir = build_demo_dataset(out / "data" / folder, shop)
    rows = []
    for name in models:
        config = resolve_config(data_dir, name.strip(), config_file=config_file, overrides=overrides, seed=seed)
        run_dir = out / "runs" / config.model_name
        log.info("training %s into %s", config.model_name, run_dir)
        result = train_run(config, run_dir, overwrite=True)
        rows.append(LeaderboardRow(
            model=config.model_name,
            recall=result.test["recall@20"],
            ndcg=result.test["ndcg@20"],
            cold_recall=cold_item_recall(load_run(run_dir)),
            train_seconds=result.train_seconds,
            best_epoch=result.best_epoch,
            run_dir=run_dir,
        ))
    return format_leaderboard(rows, data_dir)


def cold_item_recall(run: LoadedRun, k: int = 20) -> float:
    """Test recall@k counting only items that have no training interaction (cold start)."""
    evaluator = cold_item_evaluator(run.split, run.config.eval)
    return evaluator.evaluate(run.model.ranking_scorer(), run.device).mean()[f"recall@{k}"]


def format_leaderboard(rows: list[LeaderboardRow], data_dir: Path) -> str:
    ordered = sorted(rows, key=lambda r: -r.recall)
    header = f"{'model':<10} {'recall@20':>9} {'ndcg@20':>8} {'cold recall@20':>14} {'train s':>8} {'best epoch':>10}"
    lines = [f"dataset: {data_dir}", "", header, "-" * len(header)]
    lines += [
        f"{r.model:<10} {r.recall:>9.4f} {r.ndcg:>8.4f} {r.cold_recall:>14.4f} {r.train_seconds:>8.1f} {r.best_epoch:>10}"
        for r in ordered
    ]
    lines += ["", "cold recall@20: test items with no training interaction, reachable only through content.", ""]
    lines += [f"{r.model}: run folder {r.run_dir}, plot {r.run_dir / 'training.png'}" for r in ordered]
    return "\n".join(lines)
