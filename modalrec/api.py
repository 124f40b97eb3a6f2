"""The public Python API: load a dataset, train models, compare them, recommend and explain.

Everything here is re-exported by the package (``import modalrec; modalrec.train(...)``) and is the
stable surface; the modules underneath may change between versions. The command line is a thin layer
over the same functions, so a run trained from Python can be served, evaluated or compared from the
shell and the other way round.

Example:
    ```python
    import modalrec

    shop = modalrec.load_dataset("demo")
    run = modalrec.train(shop, "vbpr", config={"epochs": 20}, out="runs/vbpr")
    run.evaluate("test")["recall@20"]
    run.recommend(["U0001"], k=5)
    ```
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from modalrec.config import DataConfig, apply_overrides, build
from modalrec.errors import ConfigError, ModalrecError

DEMO_NAME = "demo"
"""The name [`load_dataset`][modalrec.api.load_dataset] accepts for the embedded demo shop."""

DEFAULT_DEMO_FOLDER = Path("modalrec-demo") / "data" / "shop"
"""Where the demo shop goes by default: the folder ``modalrec demo`` (``make demo``) also uses."""

ConfigLike = Mapping[str, Any] | str | Path | None
"""Settings for [`train`][modalrec.api.train]: ``None``, a TOML/YAML file, or a mapping of keys to values."""

DETAIL_COLUMNS = ("title", "picture")
"""The columns [`Run.recommend`][modalrec.api.Run.recommend], [`Run.explain`][modalrec.api.Run.explain] and
[`Run.interactions`][modalrec.api.Run.interactions] add from an items table (``modalrec recommend`` and
``modalrec explain`` print the same): ``picture`` rather than ``image``, which names the image modality's
column in an explanation."""


# ---------------------------------------------------------------------------------------------
# Datasets

@dataclass(frozen=True)
class Dataset:
    """A dataset on disk together with the ``data`` settings that read, filter and split it.

    Create one with [`load_dataset`][modalrec.api.load_dataset]. It is only a reference: [`train`][modalrec.api.train] reads the files again
    (and records their SHA-256 hashes in the run's manifest).

    Attributes:
        path: The dataset folder or interactions file.
        data: ``data`` settings (keys of the ``[data]`` config section) given to [`load_dataset`][modalrec.api.load_dataset].
        num_users: Users after filtering.
        num_items: Items after filtering, cold ones included.
        num_interactions: Interactions after filtering.
        modalities: Names of the item feature tables (``image``, ``text``, ...); empty for ID-only data.
        summary: The text ``modalrec data info`` prints for this dataset.
    """

    path: Path
    data: dict[str, Any] = field(default_factory=dict)
    num_users: int = 0
    num_items: int = 0
    num_interactions: int = 0
    modalities: tuple[str, ...] = ()
    summary: str = ""

    def __str__(self) -> str:
        return self.summary

    def items(self) -> pd.DataFrame:
        """The raw items table (id, title, picture path, ...) when the dataset has one, else an empty frame.

        Returns:
            One row per item, indexed by item id; picture paths are as written in the table.
        """
        from modalrec.serve.items import read_content_source, read_items_table

        return read_items_table(read_content_source(self.path))


def load_dataset(
    path_or_name: str | Path,
    *,
    data: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    demo: Mapping[str, Any] | None = None,
    fast_features: bool = False,
) -> Dataset:
    """Read a dataset, check it, and return a reference to it.

    Args:
        path_or_name: A dataset folder or interactions file in any format ``modalrec train --data``
            reads (the MMRec layout, a CSV/TSV/Parquet table, MovieLens, or a folder written by
            ``modalrec data build``), or ``"demo"`` for the embedded demo shop.
        data: ``data`` settings, e.g. ``{"split": "user_time", "min_user_interactions": 5}`` (see
            ``modalrec config keys``).
        out: For ``"demo"``: the folder to generate the shop in (default ``modalrec-demo/data/shop``,
            the folder ``modalrec demo`` uses, ``shop-fast`` beside it with ``fast_features``, and
            ``shop-<hash>`` for other ``demo`` settings). An up-to-date shop there is reused.
        demo: For ``"demo"``: generator settings (fields of ``modalrec.data.demo_shop.ShopConfig``), e.g.
            ``{"num_users": 500}``.
        fast_features: For ``"demo"``: handcrafted image features and TF-IDF text features, which take
            seconds, instead of EfficientNet-Lite0 and MiniLM (as ``modalrec demo --fast-features``).

    Returns:
        The dataset, with its sizes, modalities and a printable summary.

    Raises:
        DataFormatError: If the files cannot be read as documented (the message names file and line).
        ConfigError: If a ``data`` or ``demo`` key is unknown or has a wrong value.
    """
    from modalrec.data.prepare import prepare_data
    from modalrec.data.summary import summarize

    settings = dict(data or {})
    if str(path_or_name) == DEMO_NAME:
        path = _demo_folder(out, {**(_fast_features() if fast_features else {}), **dict(demo or {})})
    else:
        path = Path(path_or_name)
    config = build(DataConfig, apply_overrides({}, _override_strings(settings, "data."), {"data": DataConfig})
                   .get("data", {}), section="data")
    prepared = prepare_data(path, config)
    dataset = prepared.dataset
    return Dataset(
        path=path.resolve(),
        data=settings,
        num_users=dataset.num_users,
        num_items=dataset.num_items,
        num_interactions=dataset.num_interactions,
        modalities=tuple(sorted(dataset.features)),
        summary=summarize(prepared),
    )


def _fast_features() -> dict[str, Any]:
    from modalrec.demo import FAST_SHOP

    return {"image_extractor": FAST_SHOP.image_extractor, "text_extractor": FAST_SHOP.text_extractor}


def _demo_folder(out: str | Path | None, demo: Mapping[str, Any]) -> Path:
    from modalrec.data.demo_shop import ShopConfig, build_demo_dataset

    known = set(ShopConfig.__dataclass_fields__)
    unknown = sorted(set(demo) - known)
    if unknown:
        raise ConfigError(f"demo.{unknown[0]}", f"unknown key; expected one of: {', '.join(sorted(known))}")
    config = ShopConfig(**dict(demo))
    if out is None:
        if config == ShopConfig():
            out = DEFAULT_DEMO_FOLDER
        elif config == ShopConfig(**_fast_features()):
            out = DEFAULT_DEMO_FOLDER.with_name("shop-fast")
        else:
            tag = hashlib.sha256(json.dumps(dict(demo), sort_keys=True).encode()).hexdigest()[:8]
            out = DEFAULT_DEMO_FOLDER.with_name(f"shop-{tag}")
    return build_demo_dataset(Path(out), config)


def _as_dataset_path(dataset: Dataset | str | Path) -> tuple[Path, dict[str, Any]]:
    """The dataset's path and ``data`` settings; only the string ``"demo"`` (not ``Path("demo")``, a folder of
    that name) means the demo shop."""
    if isinstance(dataset, Dataset):
        return dataset.path, dataset.data
    if isinstance(dataset, str) and dataset == DEMO_NAME:
        loaded = load_dataset(DEMO_NAME)
        return loaded.path, loaded.data
    return Path(dataset), {}


# ---------------------------------------------------------------------------------------------
# Settings

def _override_strings(settings: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"train": {"epochs": 5}, "reg_weight": 0.1}`` -> ``["train.epochs=5", "reg_weight=0.1"]``.

    Values are written as JSON (which the config loader reads back as YAML), strings as they are.
    ``data.features`` stays a mapping: ``data.features.image=path``.
    """
    strings: list[str] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            strings += _override_strings(value, f"{name}.")
        elif isinstance(value, str):
            strings.append(f"{name}={value}")
        else:
            strings.append(f"{name}={json.dumps(list(value) if isinstance(value, tuple) else value)}")
    return strings


def _config_parts(config: ConfigLike, overrides: Iterable[str] = ()) -> tuple[str | None, list[str]]:
    """The config file, and the ``KEY=VALUE`` overrides: ``config``'s mapping, then ``overrides``."""
    if isinstance(overrides, str):
        raise ConfigError("overrides", f"expected a list of KEY=VALUE strings, got the string '{overrides}'")
    if config is None or isinstance(config, str | Path):
        return (None if config is None else str(config)), [str(o) for o in overrides]
    return None, [*_override_strings(config), *(str(o) for o in overrides)]


# ---------------------------------------------------------------------------------------------
# Models

def available_models() -> pd.DataFrame:
    """The registered models.

    Returns:
        One row per model, indexed by ``name``, with the columns ``description`` (one line) and
        ``uses_content`` (True when the model reads item features such as images and text).
    """
    from modalrec.models.registry import available_models as entries

    rows = [{"name": e.name, "description": e.description, "uses_content": e.uses_content} for e in entries()]
    return pd.DataFrame(rows).set_index("name")


# ---------------------------------------------------------------------------------------------
# Runs

class Run:
    """A run folder: a trained model with its config, split, metrics and history.

    Made by [`train`][modalrec.api.train] or [`load_run`][modalrec.api.load_run]. The model and data are loaded on first use and kept.

    Attributes:
        path: The run folder.
        device: Where the model is loaded to score (``cpu``, ``cuda``, ``cuda:N`` or ``auto``).
    """

    def __init__(self, path: str | Path, *, device: str = "cpu") -> None:
        from modalrec.train.run import read_run_config

        self.path = Path(path)
        self.device = device
        self._config = read_run_config(self.path)  # fails early on a folder that holds no run
        self._loaded: Any = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.model_name!r})"

    @property
    def model_name(self) -> str:
        """The registered name of the run's model."""
        return str(self._config.model_name)

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config (data path, seed and the ``data``, ``train``, ``eval``, ``model`` sections)."""
        return dict(self._config.to_dict())

    @property
    def metrics(self) -> dict[str, Any]:
        """``metrics.json``: ``valid`` and ``test`` metrics at the best epoch, ``best_epoch``, ``epochs``,
        ``train_seconds``.

        Raises:
            RunFolderError: If the run has not finished (no ``metrics.json``).
        """
        from modalrec.errors import RunFolderError
        from modalrec.io_utils import read_json
        from modalrec.train.run import METRICS_FILE

        path = self.path / METRICS_FILE
        if not path.is_file():
            raise RunFolderError(f"{self.path}: the run has not finished (no {METRICS_FILE})")
        document = read_json(path)
        if not isinstance(document, dict):
            raise RunFolderError(f"{path}: expected a JSON object")
        return document

    def history(self) -> pd.DataFrame:
        """``history.csv``: one row per epoch with the loss, seconds and validation metrics."""
        return pd.read_csv(self.path / "history.csv")

    def _run(self) -> Any:
        if self._loaded is None:
            from modalrec.train.run import load_run as load_run_folder

            self._loaded = load_run_folder(self.path, device=self.device)
        return self._loaded

    def evaluate(self, split: str = "test", *, cold_items: bool = False) -> dict[str, float]:
        """Reload the best model and compute every metric on a split (full ranking, training items masked).

        Args:
            split: ``"test"`` or ``"valid"``.
            cold_items: Count only test interactions with items that have no training interaction.

        Returns:
            Metric name (``recall@20``, ``ndcg@10``, ...) to its mean over evaluated users.

        Raises:
            ModalrecError: If ``split`` is unknown, or ``cold_items`` is asked of a run without cold items.
        """
        from modalrec.evaluate.cold import cold_item_evaluator
        from modalrec.evaluate.evaluator import make_evaluators

        if split not in ("test", "valid"):
            raise ModalrecError(f"evaluate: split must be 'test' or 'valid', got '{split}'")
        run = self._run()
        if cold_items:
            if split != "test":
                raise ModalrecError("evaluate: cold items are counted on the test split only (--cold-items, cold_items=True)")
            evaluator = cold_item_evaluator(run.split, run.config.eval)
            if not len(evaluator.users):
                raise ModalrecError(f"evaluate: {self.path} has no test interaction with a cold item "
                                    "(hold some out with --set data.cold_item_fraction=0.1 when training)")
        else:
            evaluator = make_evaluators(run.split, run.config.eval)[split]
        metrics: dict[str, float] = evaluator.evaluate(run.model.ranking_scorer(), run.device).mean()
        return metrics

    def recommend(
        self, users: str | Iterable[str] | None = None, k: int = 10, *, items: str | Path | None = None
    ) -> pd.DataFrame:
        """The k best items for each user, never one of the user's training items.

        A user id that is not in the dataset, or a user with no training interaction (the model learned
        nothing about them), gets the k items with the most training interactions instead, as the
        ``recommend`` command and the service do: ``source`` says ``popular`` and ``score`` is that count.

        Args:
            users: One user id or several, as in the dataset; ``None`` for every user.
            k: Items per user (a user with fewer unseen items gets fewer rows).
            items: An items table (CSV/TSV/Parquet with the columns ``item_id``, ``title`` or ``name``, and
                optionally ``image``, a picture path relative to the table's folder) to take titles and
                pictures from; by default the dataset's own, when it has one.

        Returns:
            Columns ``user_id, rank, item_id, score, source`` (``model`` or ``popular``) in the dataset's
            own ids, rank 1 first, plus ``title`` and ``picture`` (the picture file's absolute path, None
            when unknown) when the items table gives them.

        Raises:
            ModalrecError: If ``k < 1``, or ``items`` is missing, unreadable or names none of the run's items.
        """
        from modalrec.serve.recommend import recommend_for_users

        if k < 1:
            raise ModalrecError(f"recommend: k must be >= 1, got {k}")
        chosen = None if users is None else ([users] if isinstance(users, str) else [str(u) for u in users])
        rows = recommend_for_users(self._run(), chosen, k, unknown="popular")
        return self._with_item_details(rows, items)

    def interactions(self, user: str, split: str = "train", *, items: str | Path | None = None) -> pd.DataFrame:
        """The items a user interacted with in one split of the run: what the model learned from (train) or
        is tested on (valid, test).

        Args:
            user: A user id as in the dataset.
            split: ``"train"``, ``"valid"`` or ``"test"``.
            items: An items table to take titles and pictures from (see [`Run.recommend`][modalrec.api.Run.recommend]).

        Returns:
            Column ``item_id`` in item-index order, plus ``title``/``picture`` when known.

        Raises:
            ModalrecError: If the split is unknown or the user is not in the dataset.
        """
        from modalrec.errors import DataFormatError

        if split not in ("train", "valid", "test"):
            raise ModalrecError(f"interactions: split must be 'train', 'valid' or 'test', got '{split}'")
        run = self._run()
        try:
            index = run.dataset.user_ids.indices_of([str(user)], kind="user id")[0]
        except DataFormatError as exc:
            raise ModalrecError(f"interactions: {exc.detail}") from None
        columns = run.split.matrix(split)[index].indices
        rows = pd.DataFrame({"item_id": run.dataset.item_ids.external[sorted(columns)]})
        return self._with_item_details(rows, items)

    def explain(self, user: str, k: int = 10, *, items: str | Path | None = None) -> pd.DataFrame:
        """How much each modality contributed to each of a user's top-k items.

        Models with attention over modalities report their attention weights; for the other content
        models a modality's contribution is the drop in score when its features are replaced by their
        mean over items.

        Args:
            user: A user id as in the dataset.
            k: Items to explain.
            items: An items table to take titles and pictures from (see [`Run.recommend`][modalrec.api.Run.recommend]).

        Returns:
            Columns ``rank, item_id, score, method`` (``attention`` or ``ablation``), one column per
            modality, and ``title``/``picture`` when known.

        Raises:
            ModalrecError: If the model reads no item content, ``k < 1`` or the user is unknown.
        """
        from modalrec.serve.explain import explain_user

        if k < 1:
            raise ModalrecError(f"explain: k must be >= 1, got {k}")
        explanations = explain_user(self._run(), str(user), k)
        rows = pd.DataFrame([
            {"rank": e.rank, "item_id": e.item_id, "score": e.score, "method": e.method, **e.contributions}
            for e in explanations
        ])
        return self._with_item_details(rows, items)

    def _with_item_details(self, rows: pd.DataFrame, items: str | Path | None) -> pd.DataFrame:
        """``rows`` plus ``title``/``picture`` from ``items`` (checked to describe this run's items) or else
        from the dataset's own items table, when either gives them."""
        from modalrec.serve.items import check_items_cover, item_details, items_file_source, read_content_source

        if items is not None:
            source = items_file_source(items)
            check_items_cover(source, self._run().dataset.item_ids.external)
        else:
            source = read_content_source(self._config.data_path)
        if source.items_file is None or rows.empty:
            return rows
        ids = [str(item) for item in rows["item_id"]]
        details = item_details(source, list(dict.fromkeys(ids))).reindex(ids)  # each picture file checked once
        if source.title_col:
            rows = rows.assign(title=details["title"].to_numpy())
        if source.image_col:
            rows = rows.assign(picture=details["image"].to_numpy())
        return rows


def train(
    dataset: Dataset | str | Path,
    model: str,
    *,
    config: ConfigLike = None,
    out: str | Path | None = None,
    seed: int | None = None,
    overwrite: bool = False,
    overrides: Iterable[str] = (),
) -> Run:
    """Train one model and write a run folder (the same folder ``modalrec train`` writes).

    The epoch is chosen on the validation split (early stopping); the test split is evaluated once, with
    the best epoch's weights.

    Args:
        dataset: A [`Dataset`][modalrec.api.Dataset] from [`load_dataset`][modalrec.api.load_dataset], a dataset path, or ``"demo"``.
        model: A registered model name (see [`available_models`][modalrec.api.available_models]).
        config: Settings: a TOML/YAML file, or a mapping such as ``{"epochs": 20, "model.reg_weight":
            0.01}`` or ``{"train": {"epochs": 20}}``. Bare keys work where one section has them.
        out: The run folder (default ``runs/<model>``).
        seed: Seed for initialisation, shuffling and sampling (default 2024).
        overwrite: Replace a run already in ``out``.
        overrides: ``KEY=VALUE`` strings as ``--set`` takes them (``["epochs=5"]``), applied after ``config``.

    Returns:
        The finished run.

    Raises:
        ConfigError: If a setting is unknown or invalid (checked before any training).
        RunFolderError: If ``out`` already holds a run and ``overwrite`` is false.
    """
    from modalrec.train.run import resolve_config, train_run

    path, data = _as_dataset_path(dataset)
    config_file, settings = _config_parts(config, overrides)
    resolved = resolve_config(path, model, config_file=config_file, seed=seed,
                              overrides=[*_override_strings(data, "data."), *settings])
    folder = Path(out) if out is not None else Path("runs") / resolved.model_name
    train_run(resolved, folder, overwrite=overwrite)
    return Run(folder)


def load_run(path: str | Path, *, device: str = "cpu") -> Run:
    """Open a run folder written by [`train`][modalrec.api.train], ``modalrec train`` or ``modalrec benchmark``.

    Args:
        path: The run folder.
        device: Where to score: ``cpu`` (default), ``cuda``, ``cuda:N`` or ``auto``.

    Raises:
        RunFolderError: If the folder holds no run.
    """
    return Run(path, device=device)


# ---------------------------------------------------------------------------------------------
# Comparing models

def benchmark(
    dataset: Dataset | str | Path,
    models: Iterable[str],
    seeds: int | Iterable[int] = 3,
    *,
    config: ConfigLike = None,
    out: str | Path = "benchmark",
    overrides: Iterable[str] = (),
) -> pd.DataFrame:
    """Train every model with every seed and compare them on the test split.

    Writes ``results.md``, ``results.csv``, ``runs.csv`` and ``results.png`` into ``out`` and the runs
    into ``out/runs/<model>-seed<seed>``. A finished run of the same config already there is reused, so an
    interrupted benchmark continues where it stopped.

    Args:
        dataset: A [`Dataset`][modalrec.api.Dataset], a dataset path, or ``"demo"``.
        models: Registered model names.
        seeds: A number of seeds ``n`` (seeds 1..n) or the seeds themselves.
        config: Settings applied to every run (see [`train`][modalrec.api.train]).
        out: Folder for the runs and result files.
        overrides: ``KEY=VALUE`` strings as ``--set`` takes them, applied after ``config``.

    Returns:
        One row per model, best mean test recall@20 first, indexed by ``model``: for each metric its
        mean and ``<metric>_std`` over seeds, ``train_seconds``, ``seeds_ok`` and ``seeds_failed``.
        The paired significance tests are in ``out/results.md`` (what ``modalrec benchmark`` prints).

    Raises:
        ConfigError: If a model name or setting is invalid (checked before the first run).
    """
    from modalrec.experiments.benchmark import TABLE_METRICS, run_benchmark, summarize

    path, data = _as_dataset_path(dataset)
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else [int(s) for s in seeds]
    config_file, settings = _config_parts(config, overrides)
    names = [m.strip() for m in models if m.strip()]
    if not names:
        raise ConfigError("models", "no model given")
    report = run_benchmark(path, names, seed_list, Path(out), config_file=config_file,
                           overrides=[*_override_strings(data, "data."), *settings])
    rows = []
    for summary in summarize(report):
        row: dict[str, Any] = {"model": summary.model}
        for metric in TABLE_METRICS:
            row[metric], row[f"{metric}_std"] = summary.mean[metric], summary.std[metric]
        row.update(train_seconds=summary.train_seconds, seeds_ok=summary.seeds_ok, seeds_failed=summary.seeds_failed)
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


PROTOCOL_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
"""The training fractions [`benchmark_protocol`][modalrec.api.benchmark_protocol] compares by default."""


def benchmark_protocol(
    dataset: Dataset | str | Path,
    models: Iterable[str],
    protocol: str,
    seeds: int | Iterable[int] = 3,
    *,
    config: ConfigLike = None,
    out: str | Path = "benchmark",
    overrides: Iterable[str] = (),
    fractions: Iterable[float] = PROTOCOL_FRACTIONS,
    collect: bool = False,
    command: str | None = None,
) -> pd.DataFrame:
    """Compare models under a cold-start protocol (``modalrec benchmark --protocol``; see the cold-start page).

    ``"cold-items"`` holds out items that have no training interaction (20% unless
    ``data.cold_item_fraction`` is set) and tests each model on the cold, warm and overall tasks, each at
    the epoch its own validation chose; ``"sparsity"`` trains every model on each fraction of each user's
    training interactions. Writes ``results.json`` (everything the tables are made of), ``results.md``,
    ``results.csv``, ``runs.csv`` (and ``sparsity.png``) into ``out``, the runs into ``out/runs``; a
    finished run of the same config is read back, not retrained.

    Args:
        dataset: A [`Dataset`][modalrec.api.Dataset], a dataset path, or ``"demo"``.
        models: Registered model names; the first is the reference of the paired tests.
        protocol: ``"cold-items"`` or ``"sparsity"``.
        seeds: A number of seeds ``n`` (seeds 1..n) or the seeds themselves.
        config: Settings applied to every run (see [`train`][modalrec.api.train]).
        out: Folder for the runs and result files.
        overrides: ``KEY=VALUE`` strings as ``--set`` takes them, applied after ``config``;
            ``MODEL:KEY=VALUE`` applies to one model only, and ``{seed}`` in a value becomes the run's seed.
        fractions: For ``"sparsity"``: the training fractions, each in (0, 1].
        collect: Train nothing: report the finished runs in ``out/runs`` (the others as not run).
        command: How the results were made, recorded in ``results.json`` (default: this call, in Python).

    Returns:
        One row per model, task (``cold``, ``warm``, ``overall``) and fraction: ``<metric>_mean`` and
        ``<metric>_std`` over seeds, ``seeds_ok``, ``seeds_failed``, mean training seconds and epochs.
        The paired significance tests are in ``out/results.md``.

    Raises:
        ConfigError: If the protocol, a model name, a fraction or a setting is invalid (checked before the
            first run).
    """
    from modalrec.experiments.protocols import run_protocol, summary_rows

    path, data = _as_dataset_path(dataset)
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else [int(s) for s in seeds]
    config_file, settings = _config_parts(config, overrides)
    names = [m.strip() for m in models if m.strip()]
    points = [float(f) for f in fractions]
    if command is None:
        command = (f"modalrec.benchmark_protocol({str(path)!r}, {names!r}, {protocol!r}, seeds={seed_list!r}, "
                   f"config={config_file!r}, overrides={settings!r}, fractions={points!r}, collect={collect!r})")
    document = run_protocol(protocol, path, names, seed_list, Path(out), config_file=config_file,
                            overrides=[*_override_strings(data, "data."), *settings], fractions=points,
                            train=not collect, command=command)
    return pd.DataFrame(summary_rows(document))


# ---------------------------------------------------------------------------------------------
# The demo

DEMO_MODELS = ("bpr", "lightgcn", "vbpr", "contentmf")
"""The models ``modalrec demo`` compares by default."""


def run_demo(
    out: str | Path = "modalrec-demo",
    models: Iterable[str] = DEMO_MODELS,
    *,
    seed: int = 2024,
    fast_features: bool = False,
    config: ConfigLike = None,
    overrides: Iterable[str] = (),
) -> str:
    """Build the demo shop, train each model on it, and draw one user's history and recommendations.

    This is ``modalrec demo``: the shop goes to ``out/data/shop`` (``shop-fast`` with ``fast_features``),
    the runs to ``out/runs/<model>`` (replacing earlier ones), the picture to ``out/demo-grid.png``. The
    models train with a larger step and a shorter patience than the defaults so that the demo takes about
    a minute and a half on two cores; ``config`` and ``overrides`` still win over those.

    Args:
        out: Folder for the data, runs and picture.
        models: Registered model names.
        seed: Seed of every run.
        fast_features: Handcrafted image features and TF-IDF text features (seconds) instead of
            EfficientNet-Lite0 and MiniLM.
        config: Settings applied to every run (see [`train`][modalrec.api.train]).
        overrides: ``KEY=VALUE`` strings as ``--set`` takes them, applied after ``config``.

    Returns:
        The leaderboard (best test recall@20 first) and where the runs and the picture are, as
        ``modalrec demo`` prints it.

    Raises:
        ConfigError: If a model name or setting is invalid.
    """
    from modalrec.demo import FAST_SHOP
    from modalrec.demo import run_demo as run_demo_folder

    config_file, settings = _config_parts(config, overrides)
    return run_demo_folder(Path(out), list(models), seed=seed, overrides=settings, config_file=config_file,
                           shop=FAST_SHOP if fast_features else None)


__all__ = [
    "Dataset",
    "Run",
    "available_models",
    "benchmark",
    "benchmark_protocol",
    "load_dataset",
    "load_run",
    "run_demo",
    "train",
]
