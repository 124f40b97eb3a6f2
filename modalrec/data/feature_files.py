"""One feature table as files, outside a dataset folder: ``modalrec features extract`` (one extractor over an
items table, optionally one shard of it) and ``modalrec features merge`` (the shards joined).

A feature file ``FILE.npy`` (items x dims, float32) comes with ``FILE.ids.txt`` (one item id per row) and
``FILE.missing.npy`` (True where the item had no usable content and holds the mean of the others).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modalrec.data.build import (
    BuildOptions,
    ModalityReport,
    ModalitySpec,
    Problem,
    deduplicate_items,
    extract_modality,
    read_any_table,
    resolve_extraction_device,
)
from modalrec.data.readers import load_npy
from modalrec.data.tables import column_as_id, read_id_lines, require_columns
from modalrec.errors import ConfigError, DataFormatError
from modalrec.features.base import get_extractor
from modalrec.io_utils import write_npy, write_text


def companion_files(out: Path) -> tuple[Path, Path]:
    """``FILE.ids.txt`` and ``FILE.missing.npy`` beside ``FILE.npy``."""
    return out.with_suffix(".ids.txt"), out.with_suffix(".missing.npy")


@dataclass(frozen=True)
class FeatureFileReport:
    """What :func:`extract_feature_file` wrote and what went wrong on the way."""

    out: Path
    items_file: Path
    report: ModalityReport
    problems: list[Problem]

    def summary(self) -> str:
        """Lines for the terminal: the files, counts and speed, then each problem and a count per kind."""
        ids, missing = companion_files(self.out)
        result = self.report.result
        lines = [f"wrote {self.out} ({result.table.values.shape[0]} items x {result.table.dim}), {ids} and "
                 f"{missing}: computed {result.computed}, cached {result.cached}, missing {self.report.missing}, "
                 f"{result.items_per_second:.1f} items/s"]
        lines += [f"  {p.file or self.items_file}: item {p.item_id}: {p.reason}" for p in self.problems]
        by_kind = Counter(p.kind for p in self.problems)
        if by_kind:
            lines.append("problems: " + ", ".join(f"{kind} {n}" for kind, n in sorted(by_kind.items())))
        return "\n".join(lines)


def extract_feature_file(items_file: Path, columns: Sequence[str], extractor: str, out: Path, *,
                         item_col: str = "item_id", settings: Mapping[str, Any] | None = None,
                         shard: tuple[int, int] | None = None,
                         options: BuildOptions = BuildOptions()) -> FeatureFileReport:
    """Run ``extractor`` over ``columns`` of the items table and write ``out`` with its companion files.

    Items are de-duplicated by id (the first row kept, later ones reported). ``shard=(i, n)`` keeps only the
    i-th of n contiguous ranges of items, for one machine each; :func:`merge_feature_files` joins them.
    """
    if out.suffix != ".npy":
        raise ConfigError("--out", f"expected a .npy file name, got '{out}'")
    frame = read_any_table(items_file)
    require_columns(frame, items_file, [item_col])
    frame = frame.fillna("").astype(str).assign(item_id=column_as_id(frame, item_col, items_file))
    require_columns(frame, items_file, list(columns))
    kind = get_extractor(extractor).kind
    if len(columns) != 1 and kind != "text":
        raise ConfigError("--column", f"a {kind} extractor reads one column, got {','.join(columns)}")
    items, problems = deduplicate_items(frame, items_file)
    if shard is not None:
        index, count = shard
        items = items.iloc[index * len(items) // count: (index + 1) * len(items) // count]
    spec = ModalitySpec(kind, tuple(columns), extractor, dict(settings or {}))
    report, content_problems = extract_modality(spec, items, items_file, len(items), (), options,
                                                resolve_extraction_device(options.device))
    table = report.result.table
    ids, missing = companion_files(out)
    write_npy(out, table.values)
    write_npy(missing, table.missing)
    write_text(ids, "".join(f"{item}\n" for item in items["item_id"]))
    return FeatureFileReport(out, items_file, report, problems + content_problems)


def merge_feature_files(shards: Sequence[Path], out: Path) -> tuple[int, int]:
    """Join the outputs of sharded :func:`extract_feature_file` runs, in the order given, into ``out``.

    Missing rows are filled again with the mean over the whole catalogue (not over their shard). Returns the
    merged table's (items, dims).
    """
    values: list[np.ndarray] = []
    missing: list[np.ndarray] = []
    ids: list[str] = []
    owner: dict[str, Path] = {}
    for shard in shards:
        table, mask, shard_ids = read_feature_file(shard)
        if values and table.shape[1] != values[0].shape[1]:
            raise DataFormatError(shard, f"has {table.shape[1]} dims; the first shard has {values[0].shape[1]}")
        for item in shard_ids:
            if item in owner:
                raise DataFormatError(shard.with_suffix(".ids.txt"), f"item id '{item}' is also in {owner[item]}; "
                                      "pass each shard once", field="item id")
            owner[item] = shard
        values.append(table)
        missing.append(mask)
        ids += shard_ids
    table, mask = np.concatenate(values), np.concatenate(missing)
    if mask.any() and (~mask).any():
        table[mask] = table[~mask].mean(axis=0)
    ids_file, missing_file = companion_files(out)
    write_npy(out, table.astype(np.float32))
    write_npy(missing_file, mask)
    write_text(ids_file, "".join(f"{item}\n" for item in ids))
    return table.shape[0], table.shape[1]


def read_feature_file(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The (items, dim) matrix, missing mask and item ids of one feature file, checked to agree."""
    ids_file, missing_file = companion_files(path)
    for file in (path, missing_file, ids_file):
        if not file.is_file():
            raise DataFormatError(file, "not found; expected the three files `features extract` writes")
    table = load_npy(path)
    if table.ndim != 2 or table.dtype.kind not in "fiu" or table.shape[1] == 0:
        raise DataFormatError(path, f"expected a 2-D numeric array (items x dims), found shape {table.shape} "
                                    f"{table.dtype}")
    mask = load_npy(missing_file)
    if mask.shape != (len(table),) or mask.dtype.kind != "b":
        raise DataFormatError(missing_file, f"expected a boolean array of shape ({len(table)},) "
                              f"(one per row of {path.name}), found {mask.shape} {mask.dtype}")
    ids = read_id_lines(ids_file, "item id list")
    if len(ids) != len(table):
        raise DataFormatError(ids_file, f"lists {len(ids)} item ids; expected {len(table)}, one "
                                        f"per row of {path.name}")
    return table, mask, ids


__all__ = ["FeatureFileReport", "extract_feature_file", "merge_feature_files", "read_feature_file"]
