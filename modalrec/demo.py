"""``modalrec demo``: build the embedded shop, train several models on it, print a leaderboard and draw one
user's history and recommendations as a grid of pictures.

The demo is the first thing a new user runs, so it is sized to finish in about a minute and a half on two
CPU cores after the install: the models train with :data:`DEMO_TRAINING` (a larger step and a shorter
patience than the defaults; a config file or ``--set`` still overrides them). The leaderboard is a list of
:class:`Column` over each run's :class:`LeaderboardRow`; a new column is one more entry in :data:`COLUMNS`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modalrec.data.demo_shop import ShopConfig, build_demo_dataset
from modalrec.evaluate.cold import cold_item_evaluator, cold_items
from modalrec.serve.items import read_content_source
from modalrec.serve.picture import recommendation_picture
from modalrec.train.run import LoadedRun, configure_threads, load_run, resolve_config, train_run

log = logging.getLogger(__name__)

FAST_SHOP = ShopConfig(image_extractor="handcrafted", text_extractor="tfidf")
"""The demo shop with features that take seconds (``modalrec demo --fast-features``)."""

DEMO_TRAINING = ("train.learning_rate=0.005", "train.patience=5")
"""Settings under the user's, in place of each model's training defaults: one step size for all and a patience
of 5, so that the demo's models (BPR, LightGCN, VBPR and ContentMF by default) stop after a few dozen epochs
instead of up to a few hundred."""

PICTURE_FILE = "demo-grid.png"


@dataclass(frozen=True)
class LeaderboardRow:
    model: str
    test: dict[str, float]  # the run's test metrics (recall@20, ndcg@20, ...)
    cold_recall: float  # test recall@20 on items without training interactions
    train_seconds: float
    best_epoch: int
    closed_form: bool
    run_dir: Path
    extra: dict[str, float] = field(default_factory=dict)  # further figures for further columns


@dataclass(frozen=True)
class Column:
    header: str
    width: int
    cell: Callable[[LeaderboardRow], str]


COLUMNS: list[Column] = [
    Column("model", 10, lambda r: r.model),
    Column("recall@20", 9, lambda r: f"{r.test['recall@20']:.4f}"),
    Column("ndcg@20", 8, lambda r: f"{r.test['ndcg@20']:.4f}"),
    Column("cold recall@20", 14, lambda r: f"{r.cold_recall:.4f}"),
    Column("train s", 8, lambda r: f"{r.train_seconds:.1f}"),
    Column("best epoch", 11, lambda r: "closed form" if r.closed_form else str(r.best_epoch + 1)),  # from 1
]


def run_demo(
    out: Path,
    models: list[str],
    *,
    seed: int = 2024,
    overrides: list[str] | None = None,
    config_file: str | None = None,
    shop: ShopConfig | None = None,
) -> str:
    """Generate the shop under ``out/data``, train each model into ``out/runs/<model>``, draw the picture
    ``out/demo-grid.png``; return the leaderboard and where everything is.

    ``shop`` is the generator's config: the default one goes to ``out/data/shop``, :data:`FAST_SHOP` to
    ``out/data/shop-fast``, any other to ``out/data/shop-custom``.
    """
    start = time.perf_counter()
    configure_threads(0)  # $OMP_NUM_THREADS or 1 thread: the fast choice on a shared 2-core machine
    shop = shop or ShopConfig()
    folder = {ShopConfig(): "shop", FAST_SHOP: "shop-fast"}.get(shop, "shop-custom")
    log.info("demo: building the shop (%d users, %d items, pictures and texts) in %s",
             shop.num_users, shop.num_items, out / "data" / folder)
    data_dir = build_demo_dataset(out / "data" / folder, shop)
    rows, cold_count = [], 0
    for number, name in enumerate(models, start=1):
        config = resolve_config(data_dir, name.strip(), config_file=config_file,
                                overrides=[*DEMO_TRAINING, *(overrides or [])], seed=seed)
        run_dir = out / "runs" / config.model_name
        log.info("demo: training %s (%d of %d) into %s", config.model_name, number, len(models), run_dir)
        result = train_run(config, run_dir, overwrite=True)
        run = load_run(run_dir)
        cold_count = int(cold_items(run.split).sum())
        rows.append(LeaderboardRow(config.model_name, result.test, cold_item_recall(run),
                                   result.train_seconds, result.best_epoch, result.closed_form, run_dir))
    best = max(rows, key=lambda r: r.test["recall@20"])
    log.info("demo: drawing %s's recommendations", best.model)
    picture = recommendation_picture(load_run(best.run_dir), read_content_source(data_dir), out / PICTURE_FILE)
    seconds = time.perf_counter() - start
    return "\n".join([format_leaderboard(rows, data_dir, cold_count=cold_count), "",
                      f"picture: {picture} (a user's history and {best.model}'s recommendations)",
                      f"demo finished in {seconds:.0f} s"])


def cold_item_recall(run: LoadedRun, k: int = 20) -> float:
    """Test recall@k counting only items that have no training interaction (cold start)."""
    evaluator = cold_item_evaluator(run.split, run.config.eval)
    return evaluator.evaluate(run.model.ranking_scorer(), run.device).mean()[f"recall@{k}"]


def format_leaderboard(rows: list[LeaderboardRow], data_dir: Path, columns: list[Column] | None = None, *,
                       cold_count: int = 0) -> str:
    """The runs best first (test recall@20), one line each, under a header of ``columns``.

    ``cold_count`` (the number of cold items) puts the chance level of ``cold recall@20`` in the footnote:
    the cold items are ranked among themselves, so a model that reads no content still gets about 20/count.
    """
    columns = columns or COLUMNS
    ordered = sorted(rows, key=lambda r: -r.test["recall@20"])

    def line(cells: list[str]) -> str:
        first, *rest = zip(columns, cells, strict=True)
        return f"{first[1]:<{first[0].width}} " + " ".join(f"{cell:>{column.width}}" for column, cell in rest)

    header = line([column.header for column in columns])
    lines = [f"dataset: {data_dir}", "", header, "-" * len(header)]
    lines += [line([column.cell(row) for column in columns]) for row in ordered]
    lines += ["", "cold recall@20: test items with no training interaction, reachable only through content."]
    if cold_count:
        lines.append(f"They are ranked among the {cold_count} cold items only: ranking them at random gives "
                     f"about {min(1.0, 20 / cold_count):.2f}.")
    lines.append("")
    for row in ordered:
        plot = "" if row.closed_form else f", plot {row.run_dir / 'training.png'}"
        lines.append(f"{row.model}: run folder {row.run_dir}{plot}")
    return "\n".join(lines)
