"""The run pipeline: resolve the config, read and split the data, train, and write the run folder.

A run folder holds ``config.json`` (the resolved config), ``manifest.json`` (data hashes, versions,
machine: see :mod:`modalrec.train.manifest`), ``user_ids.csv``/``item_ids.csv`` (index -> the dataset's own
ids), ``split.npz``, ``checkpoint.pt`` (resume state), ``best.pt`` (best weights), ``history.csv``,
``training.png`` and, once the run is complete, ``metrics.json``.

Every file is written atomically (:mod:`modalrec.io_utils`), ``config.json`` last of the files that start a
run and ``metrics.json`` last of all, so a folder is always in one of these states: no ``config.json`` (no
run), ``config.json`` without ``metrics.json`` (a run to ``train --resume``, from its last checkpoint or from
the start), or complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modalrec.config import (
    DataConfig,
    EvalConfig,
    TrainConfig,
    apply_overrides,
    build,
    read_config_file,
    to_dict,
)
from modalrec.data.dataset import Dataset
from modalrec.data.prepare import PreparedData, prepare_data
from modalrec.data.filtering import filter_dataset
from modalrec.data.readers import load_dataset
from modalrec.data.split import Split, make_split
from modalrec.evaluate.tasks import activity_buckets
from modalrec.errors import ConfigError, RunFolderError, WriteError, quoted
from modalrec.io_utils import TEMP_SUFFIX, read_json, remove_temporary_files, write_json, write_with
from modalrec.models.base import Embeddings, ModelInputs, Recommender
from modalrec.models.io import load_model, save_model
from modalrec.models.registry import capabilities_of, get_model
from modalrec.train.distributed import DistContext, check_same_everywhere
from modalrec.train.distributed import start as start_distributed
from modalrec.train.lock import LOCK_NAME, run_folder_lock
from modalrec.train.manifest import (
    MANIFEST_FILE,
    changed_data_files,
    describe_split,
    describe_data_files,
    mark_finished,
    mark_resumed,
    new_manifest,
    read_manifest,
    write_manifest,
)
from modalrec.device import resolve_device
from modalrec.train.trainer import CHECKPOINT_FILE, Trainer, TrainResult

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
SPLIT_FILE = "split.npz"
START_FILES = ("user_ids.csv", "item_ids.csv", SPLIT_FILE, MANIFEST_FILE, CONFIG_FILE)  # written in this order
RESULT_FILES = (METRICS_FILE, CHECKPOINT_FILE, "best.pt", "history.csv", "training.png", "test_per_user.npz")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run."""

    data_path: str
    model_name: str
    seed: int
    data: DataConfig
    train: TrainConfig
    eval: EvalConfig
    model: Any  # the model's own config dataclass

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_path": self.data_path,
            "model_name": self.model_name,
            "seed": self.seed,
            "data": to_dict(self.data),
            "train": to_dict(self.train),
            "eval": to_dict(self.eval),
            "model": to_dict(self.model),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], file: Path | None = None) -> RunConfig:
        entry = get_model(values["model_name"])
        return cls(
            data_path=values["data_path"],
            model_name=values["model_name"],
            seed=int(values["seed"]),
            data=build(DataConfig, values.get("data", {}), section="data", file=file),
            train=build(TrainConfig, values.get("train", {}), section="train", file=file),
            eval=build(EvalConfig, values.get("eval", {}), section="eval", file=file),
            model=build(entry.config_class, values.get("model", {}), section="model", file=file),
        )


def resolve_config(
    data_path: str | Path,
    model_name: str | None,
    *,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
) -> RunConfig:
    """Defaults, then the config file, then ``--set`` overrides; every key checked against its dataclass."""
    sections: dict[str, Any] = read_config_file(config_file) if config_file else {}
    name = model_name or sections.pop("model_name", None)
    sections.pop("model_name", None)
    if not name:
        raise ConfigError("--model", "no model given; pass --model NAME (see `modalrec models`)")
    entry = get_model(name)
    types = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig, "model": entry.config_class}
    merged = apply_overrides(sections, overrides or [], types)
    file = Path(config_file) if config_file else None
    model: Any = build(entry.config_class, merged.get("model", {}), section="model", file=file)
    merged["train"] = entry.train_section(merged.get("train", {}), model)
    return RunConfig(
        data_path=str(Path(data_path).resolve()),
        model_name=entry.name,  # the registered spelling, whatever case the user typed
        seed=2024 if seed is None else seed,
        data=build(DataConfig, merged.get("data", {}), section="data", file=file),
        train=build(TrainConfig, merged.get("train", {}), section="train", file=file),
        eval=build(EvalConfig, merged.get("eval", {}), section="eval", file=file),
        model=model,
    )


def model_inputs(dataset: Dataset, split: Split) -> ModelInputs:
    return ModelInputs(
        num_users=split.num_users,
        num_items=split.num_items,
        train_users=torch.from_numpy(split.train.users).long(),
        train_items=torch.from_numpy(split.train.items).long(),
        features={name: torch.from_numpy(table.values) for name, table in dataset.features.items()},
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_threads(threads: int) -> None:
    """``threads`` torch CPU threads; 0 means ``$OMP_NUM_THREADS`` when set, else 1 (see docs/training.md)."""
    count = threads or int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    torch.set_num_threads(max(count, 1))


def build_model(config: RunConfig, inputs: ModelInputs) -> Recommender:
    seed_everything(config.seed)
    entry = get_model(config.model_name)
    model: Recommender = entry.model_class(config.model, with_backbone(config.model, inputs))
    return model


def with_backbone(model_config: Any, inputs: ModelInputs) -> ModelInputs:
    """``inputs`` with the user and item vectors of the finished run named by ``model.backbone_run`` (for the
    cold-start models that refine a warm backbone); unchanged when the model names none.

    Raises:
        ConfigError: the run was trained on other training interactions (its vectors would have seen the
            held-out items), or its model does not factor into user and item vectors.
    """
    backbone_run = getattr(model_config, "backbone_run", "")
    if not backbone_run or inputs.backbone is not None:
        return inputs
    run = load_run(backbone_run)
    theirs = np.unique(run.split.train.users.astype(np.int64) * run.split.num_items + run.split.train.items)
    ours = np.unique(inputs.train_users.numpy().astype(np.int64) * inputs.num_items + inputs.train_items.numpy())
    if (run.split.num_users, run.split.num_items) != (inputs.num_users, inputs.num_items) or not np.array_equal(
            theirs, ours):
        raise ConfigError("model.backbone_run", f"{backbone_run} was trained on other training interactions than "
                          "this run's split (same data, data settings and seed are needed)")
    if not capabilities_of(run.model).dot_product:
        raise ConfigError("model.backbone_run", f"{backbone_run}: its model {run.config.model_name} does not "
                          "factor into user and item vectors")
    vectors = run.model.eval().embeddings()
    return dataclasses.replace(inputs, backbone=Embeddings(vectors.users.detach().cpu(), vectors.items.detach().cpu()))


# ---------------------------------------------------------------------------------------------
# Training into a run folder

def train_run(
    config: RunConfig, out_dir: str | Path, *, overwrite: bool = False, dist_context: DistContext | None = None
) -> TrainResult:
    """Train and write the run folder. Nothing is written until the data, split and model are valid.

    Under torchrun every rank trains and only rank 0 writes the folder.

    Raises:
        RunFolderError: If ``out_dir`` holds a run (without ``overwrite``), cannot be written (read-only,
            no permission) or fills the disk; a run that had started keeps its last checkpoint.
    """
    out = Path(out_dir)
    context = dist_context or DistContext()
    if context.is_main:
        _check_new_run_folder(out, overwrite)
        _check_writable(out)
    configure_threads(config.train.threads)
    prepared = prepare_data(config.data_path, config.data)
    model = build_model(config, model_inputs(prepared.dataset, prepared.split))
    trainer = _trainer(config, model, prepared.split, out, context)
    if not context.is_main:
        return trainer.fit()
    manifest = new_manifest(config.to_dict(), prepared.dataset, prepared.split, trainer.device, context.world_size)
    with run_folder_lock(out), _write_errors(out):
        _check_new_run_folder(out, overwrite)  # again: another `train` may have finished here meanwhile
        remove_temporary_files(out)
        for stale in (*RESULT_FILES, *START_FILES):
            (out / stale).unlink(missing_ok=True)
        _start_run_folder(out, config, prepared, manifest)
        return _finish(trainer, out, manifest, resume=False)


def resume_run(out_dir: str | Path, *, changes: ResumeChanges | None = None,
               dist_context: DistContext | None = None) -> TrainResult:
    """Continue an interrupted run from its last checkpoint (from the start if it stopped before the first).

    ``changes`` (the command line's ``--set``, ``--config``, ``--data``, ``--model``, ``--seed``) may change
    only :data:`RESUME_SAFE_KEYS`; those changes are written to ``config.json`` and recorded in the manifest's
    ``resumed`` entry. Any other change is refused naming its key: it would mix two trainings in one run.

    Raises:
        RunFolderError: If ``out_dir`` holds no run, the data files differ from those the run started
            with (the manifest's SHA-256 hashes), or ``config.json`` was edited by hand.
        ConfigError: If ``changes`` touch a setting that cannot change mid-run.
    """
    out = Path(out_dir)
    if not (out / CONFIG_FILE).is_file() or not (out / SPLIT_FILE).is_file():
        raise RunFolderError(f"{out}: holds no run to resume (expected {CONFIG_FILE} and {SPLIT_FILE})")
    context = dist_context or DistContext()
    if context.is_main:
        _check_writable(out)
    manifest = read_manifest(out)
    recorded = read_run_config(out, manifest)
    config, changed = apply_resume_changes(recorded, changes or ResumeChanges())
    configure_threads(config.train.threads)
    dataset, split = _reload_data(out, config)
    if manifest is not None:
        _check_data_unchanged(out, config, dataset, manifest)
    model = build_model(config, model_inputs(dataset, split))
    trainer = _trainer(config, model, split, out, context)
    from_checkpoint = (out / CHECKPOINT_FILE).is_file()
    if not context.is_main:
        return trainer.fit(resume=from_checkpoint)
    with run_folder_lock(out), _write_errors(out):
        remove_temporary_files(out)
        if manifest is None:  # a run from before manifests: describe it now
            manifest = new_manifest(config.to_dict(), dataset, split, trainer.device, context.world_size)
        mark_resumed(manifest, trainer.device, context.world_size)
        if changed:  # the manifest first: a kill between the two writes is recognised by read_run_config
            manifest["resumed"][-1]["changed"] = changed
            manifest["config"] = config.to_dict()
        write_manifest(out, manifest)
        if changed:
            write_json(out / CONFIG_FILE, config.to_dict())
        return _finish(trainer, out, manifest, resume=from_checkpoint)


def _start_run_folder(out: Path, config: RunConfig, prepared: PreparedData, manifest: dict[str, Any]) -> None:
    """Write :data:`START_FILES`, ``config.json`` last; if any fails, remove those already written."""
    try:
        prepared.dataset.user_ids.save(out / "user_ids.csv", "user_id")
        prepared.dataset.item_ids.save(out / "item_ids.csv", "item_id")
        prepared.split.save(out / SPLIT_FILE)
        write_manifest(out, manifest)
        write_json(out / CONFIG_FILE, config.to_dict())
    except BaseException:
        for name in START_FILES:
            with contextlib.suppress(OSError):
                (out / name).unlink(missing_ok=True)
        raise


def _check_writable(out: Path) -> None:
    """Fail before any work if ``out`` (or the folder it would be made in) cannot be written."""
    folder = out
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RunFolderError(f"{out}: cannot write the run folder ({folder}: {exc.strerror or exc})") from None


@contextlib.contextmanager
def _write_errors(out: Path) -> Iterator[None]:
    """Turn a failed write (disk full, read-only) into a RunFolderError that says what is left."""
    try:
        yield
    except WriteError as exc:
        if (out / CHECKPOINT_FILE).is_file():
            left = f"the run keeps its last checkpoint; continue with `modalrec train --resume --out {out}`"
        elif (out / CONFIG_FILE).is_file():
            left = f"the run has started; continue with `modalrec train --resume --out {out}`"
        else:
            left = "no run was started"
        raise RunFolderError(f"{exc}; {left}") from None


def _check_data_unchanged(out: Path, config: RunConfig, dataset: Dataset, manifest: dict[str, Any]) -> None:
    recorded = manifest.get("data", {}).get("files", [])
    changed = changed_data_files(recorded, describe_data_files(Path(config.data_path), dataset))
    if changed:
        raise RunFolderError(
            f"{out}: the data at {config.data_path} has changed since the run started ({', '.join(changed)} "
            "differ from the SHA-256 hashes in manifest.json); resuming would mix two datasets, so start a new run"
        )


def _trainer(config: RunConfig, model: Recommender, split: Split, out: Path, context: DistContext) -> Trainer:
    if context.enabled:
        start_distributed(context, resolve_device(config.train.device), config.train.distributed_timeout_s)
        check_same_everywhere(
            f"{split.num_users} users x {split.num_items} items, {len(split.train)} training pairs, "
            f"model {config.model_name}, world size {context.world_size}",
            context,
        )
    return Trainer(model, split, config.train, config.eval, seed=config.seed, checkpoint_dir=out,
                   dist_context=context)


def _finish(trainer: Trainer, out: Path, manifest: dict[str, Any], *, resume: bool) -> TrainResult:
    result = trainer.fit(resume=resume)
    save_model(trainer.model, out / "best.pt")
    _write_history(out, result.history)
    if result.history:  # a closed-form model has no epochs to plot
        _plot_history(out / "training.png", result.history, trainer.metric, trainer.model.name)
    if result.test_table is not None:
        table = result.test_table
        arrays: dict[str, Any] = {"users": table.users, **table.per_user}
        for task, task_table in result.task_tables.items():  # under the cold protocol: each task's users too
            arrays.update({f"{task}__users": task_table.users,
                           **{f"{task}__{name}": values for name, values in task_table.per_user.items()}})
        write_with(out / "test_per_user.npz", lambda handle: np.savez_compressed(handle, **arrays), "wb")
    write_json(out / METRICS_FILE, metrics_document(result, trainer.split, trainer.eval_config))
    mark_finished(manifest)
    write_manifest(out, manifest)
    return result


def metrics_document(result: TrainResult, split: Split | None = None, eval_config: EvalConfig | None = None
                     ) -> dict[str, Any]:
    """``metrics.json``: valid and test of ``eval.task``, each protocol task's valid and test, and test
    recall@20 by user activity bucket (``eval.user_buckets``) for each task."""
    document: dict[str, Any] = {
        "valid": result.valid,
        "test": result.test,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "train_seconds": round(result.train_seconds, 3),
    }
    if result.closed_form:
        document["closed_form"] = True  # solved when built: best_epoch and epochs mean nothing
    if result.tasks:
        document["tasks"] = result.tasks
        document["task_best_epochs"] = result.task_best_epochs
    if split is not None and eval_config is not None and eval_config.user_buckets and 20 in eval_config.ks:
        tables = dict(result.task_tables) or ({} if result.test_table is None else {"test": result.test_table})
        counts = split.training_counts()
        document["test_buckets"] = {name: activity_buckets(table, counts, eval_config.user_buckets)
                                    for name, table in tables.items()}
    return document


def _check_new_run_folder(out: Path, overwrite: bool) -> None:
    """Refuse a file, a run (without ``overwrite``) and, even with it, a folder holding anything but a run."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out}: exists and is not a folder")
    holds_run = (out / CONFIG_FILE).exists() or (out / CHECKPOINT_FILE).exists()
    if holds_run and not overwrite:
        raise RunFolderError(f"{out}: already holds a run; pass --resume to continue it or --overwrite to replace it")
    foreign = [] if holds_run or not out.is_dir() else foreign_entries(out)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise RunFolderError(f"{out}: is not empty and holds no modalrec run (found {shown}); a run needs a new or "
                             "empty folder (--overwrite replaces only an earlier run)")


def foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that no run writes (a run's own files, its lock and temporary files are not)."""
    own = {*START_FILES, *RESULT_FILES, LOCK_NAME}
    return sorted(p.name for p in folder.iterdir()
                  if p.name not in own and not (p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX)))


def _write_history(out: Path, history: list[dict[str, float]]) -> None:
    columns = sorted({key for record in history for key in record}, key=lambda k: (k != "epoch", k))

    def writer(handle: Any) -> None:
        handle.write(",".join(columns) + "\n")
        for record in history:
            handle.write(",".join("" if record.get(c) is None else f"{record[c]:.6g}" for c in columns) + "\n")

    write_with(out / "history.csv", writer)


def _plot_history(path: Path, history: list[dict[str, float]], metric: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, loss_axis = plt.subplots(figsize=(7, 4))
    loss_axis.plot(epochs, [r["loss"] for r in history], color="tab:blue", label="training loss")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss", color="tab:blue")
    metric_axis = loss_axis.twinx()
    evaluated = [r for r in history if metric in r]
    metric_axis.plot([r["epoch"] for r in evaluated], [r[metric] for r in evaluated], color="tab:orange", marker=".")
    metric_axis.set_ylabel(f"validation {metric}", color="tab:orange")
    loss_axis.set_title(f"{title}: loss and validation {metric} per epoch")
    fig.tight_layout()
    write_with(path, lambda handle: fig.savefig(handle, format="png", dpi=110), mode="wb")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Reading a run folder back

@dataclass(frozen=True)
class LoadedRun:
    config: RunConfig
    dataset: Dataset
    split: Split
    model: Recommender
    device: torch.device


def read_run_config(run_dir: Path, manifest: dict[str, Any] | None = None) -> RunConfig:
    """The run's ``config.json``, checked against the config its ``manifest.json`` recorded.

    Raises:
        RunFolderError: If ``config.json`` is missing, damaged or differs from the manifest's config (it was
            edited by hand): the run's results would no longer say what made them.
    """
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise RunFolderError(f"{run_dir}: not a run folder (no {CONFIG_FILE})")
    values = read_json(path)
    if not isinstance(values, dict):
        raise RunFolderError(f"{path}: expected a JSON object")
    manifest = read_manifest(run_dir) if manifest is None else manifest
    if manifest is not None and isinstance(manifest.get("config"), dict):
        values = _config_as_recorded(path, values, manifest)
    try:
        return RunConfig.from_dict(values, file=path)
    except KeyError as exc:
        raise RunFolderError(f"{path}: lacks the key {exc}") from None


# Settings ``train --resume`` may change: they decide how long training goes on and where it runs, not what
# the model learns from one step to the next.
RESUME_SAFE_KEYS = ("train.epochs", "train.patience", "train.progress", "train.device", "train.threads",
                    "train.checkpoint_every", "train.distributed_timeout_s")


@dataclass(frozen=True)
class ResumeChanges:
    """What ``train --resume`` was asked to change: ``--set`` overrides, a ``--config`` file's sections and
    the ``--data``/``--model``/``--seed`` flags (None when not given)."""

    overrides: tuple[str, ...] = ()
    sections: dict[str, Any] = field(default_factory=dict)
    data_path: str | None = None
    model_name: str | None = None
    seed: int | None = None


def apply_resume_changes(recorded: RunConfig, changes: ResumeChanges) -> tuple[RunConfig, dict[str, Any]]:
    """``recorded`` with ``changes`` applied, and ``{key: {"from": old, "to": new}}`` of what they change.

    Raises:
        ConfigError: naming the first key outside :data:`RESUME_SAFE_KEYS` that would change.
    """
    if changes.data_path is not None and str(Path(changes.data_path).resolve()) != recorded.data_path:
        _refuse_resume_change("--data", recorded.data_path, str(Path(changes.data_path).resolve()))
    if changes.model_name is not None and changes.model_name != recorded.model_name:
        _refuse_resume_change("--model", recorded.model_name, changes.model_name)
    if changes.seed is not None and changes.seed != recorded.seed:
        _refuse_resume_change("--seed", recorded.seed, changes.seed)
    if changes.sections.get("model_name", recorded.model_name) != recorded.model_name:
        _refuse_resume_change("model_name", recorded.model_name, changes.sections["model_name"])
    entry = get_model(recorded.model_name)
    types = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig, "model": entry.config_class}
    values = recorded.to_dict()
    sections = {name: {**values[name], **changes.sections.get(name, {})} for name in types}
    merged = apply_overrides(sections, list(changes.overrides), types)
    config = RunConfig.from_dict({**values, **merged})
    before, after = _flatten(values), _flatten(config.to_dict())
    changed = {key: {"from": before.get(key), "to": after.get(key)}
               for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)}
    for key, change in changed.items():
        if key not in RESUME_SAFE_KEYS:
            _refuse_resume_change(key, change["from"], change["to"])
    for key, change in changed.items():
        log.info("resume: %s changed from %s to %s", key, change["from"], change["to"])
    return config, changed


def _refuse_resume_change(key: str, recorded: Any, asked: Any) -> None:
    raise ConfigError(key, f"cannot change on --resume: it would mix two trainings in one run (only "
                           f"{', '.join(RESUME_SAFE_KEYS)} may change; start a new run with another --out); "
                           f"the run has {quoted(recorded, 60)}, asked for {quoted(asked, 60)}")


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name.count(".") < 1:  # sections; a setting's own table stays whole
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _config_as_recorded(path: Path, values: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """``values`` (``config.json``) if it matches the manifest's config; a RunFolderError naming the keys
    that differ if not. One case is repaired: a resume killed between writing the manifest and ``config.json``
    leaves ``config.json`` holding exactly the ``from`` side of the change the manifest recorded."""
    recorded = manifest["config"]
    current, expected = _flatten(values), _flatten(recorded)
    differing = sorted(key for key in current.keys() | expected.keys() if current.get(key) != expected.get(key))
    if not differing:
        return values
    resumes = manifest.get("resumed") or [{}]
    last_change = resumes[-1].get("changed", {}) if isinstance(resumes[-1], dict) else {}
    if differing == sorted(last_change) and all(current.get(k) == last_change[k]["from"] for k in differing):
        write_json(path, recorded)
        return dict(recorded)
    shown = "; ".join(f"{key}: {quoted(current.get(key), 40)} in {CONFIG_FILE}, {quoted(expected.get(key), 40)} "
                      f"in {MANIFEST_FILE}" for key in differing[:3])
    more = f" and {len(differing) - 3} more" if len(differing) > 3 else ""
    raise RunFolderError(f"{path}: edited after the run started ({shown}{more}); restore it, or change "
                         f"{', '.join(RESUME_SAFE_KEYS)} with train --resume --set, or start a new run")


def _reload_data(run_dir: Path, config: RunConfig) -> tuple[Dataset, Split]:
    dataset, _ = filter_dataset(load_dataset(config.data_path, config.data), config.data)
    split = Split.load(run_dir / SPLIT_FILE)
    if (split.num_users, split.num_items) != (dataset.num_users, dataset.num_items):
        raise RunFolderError(
            f"{run_dir}: the data at {config.data_path} has changed since training "
            f"({dataset.num_users} users x {dataset.num_items} items now, "
            f"{split.num_users} x {split.num_items} in the run)"
        )
    _check_split_unchanged(run_dir, split)
    return dataset, split


def _check_split_unchanged(run_dir: Path, split: Split) -> None:
    """The split must be the one the run was trained and evaluated on (the manifest's SHA-256 of it)."""
    manifest = read_manifest(run_dir)
    recorded = (manifest or {}).get("split", {})
    if isinstance(recorded, dict) and recorded.get("sha256") not in (None, describe_split(split, 0)["sha256"]):
        raise RunFolderError(f"{run_dir / SPLIT_FILE}: differs from the split recorded in {MANIFEST_FILE} (SHA-256 of "
                             "its index arrays): it was edited or replaced; restore it or train a new run")


def _check_model_matches(path: Path, model: Recommender, config: RunConfig) -> None:
    """``best.pt`` must hold the model ``config.json`` describes (a weights file copied from another run
    would otherwise be served under this run's name)."""
    if model.name != config.model_name:
        raise RunFolderError(f"{path}: holds a {model.name} model but {CONFIG_FILE} says {config.model_name}; "
                             "it comes from another run")
    theirs, ours = to_dict(model.config), to_dict(config.model)
    differing = sorted(key for key in ours.keys() | theirs.keys() if theirs.get(key) != ours.get(key))
    if differing:
        key = differing[0]
        raise RunFolderError(f"{path}: its model settings differ from {CONFIG_FILE} (model.{key}: "
                             f"{quoted(theirs.get(key), 40)} against {quoted(ours.get(key), 40)}); it comes from "
                             "another run")


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    """Reload a completed run's data, split and best model."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if not (run_dir / "best.pt").is_file():
        raise RunFolderError(f"{run_dir}: the run has no best.pt yet (still training? use `modalrec train --resume`)")
    configure_threads(config.train.threads)
    dataset, split = _reload_data(run_dir, config)
    target = resolve_device(device)
    model = load_model(run_dir / "best.pt", with_backbone(config.model, model_inputs(dataset, split)), target)
    _check_model_matches(run_dir / "best.pt", model, config)
    return LoadedRun(config, dataset, split, model, target)


__all__ = ["LoadedRun", "RunConfig", "load_run", "resolve_config", "resume_run", "train_run"]
