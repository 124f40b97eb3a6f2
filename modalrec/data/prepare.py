"""From a data path and the ``data`` settings to the filtered dataset and its split."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modalrec.config import DataConfig
from modalrec.data.dataset import Dataset
from modalrec.data.filtering import FilterReport, filter_dataset
from modalrec.data.readers import detect_format, load_dataset
from modalrec.data.split import Split, make_split
from modalrec.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

TABLE_ONLY = ("user_col", "item_col", "rating_col", "timestamp_col", "split_col", "sep", "features", "item_ids_file")
"""Settings only the table format reads; the MMRec and MovieLens layouts have fixed file and column names."""


@dataclass(frozen=True)
class PreparedData:
    """The dataset after filtering, its split, and what the filter removed."""

    dataset: Dataset
    split: Split
    report: FilterReport


def prepare_data(data_path: str | Path, config: DataConfig, *, allow_repeats: bool = False) -> PreparedData:
    """Load ``data_path``, apply the k-core filter and make the split, as ``config`` says.

    Raises:
        DataFormatError: If (with ``data.deduplicate=false``) a valid or test interaction repeats a training
            pair of the same user: full-ranking evaluation never recommends a training item again, so such a
            target could never be hit and every metric would be silently lower. ``allow_repeats`` (for
            ``data info``) logs a warning instead.
    """
    dataset, report = filter_dataset(load_dataset(data_path, config), config)
    _check_settings_apply(Path(data_path), config)
    split = make_split(dataset, config)
    if split.method == "given" and config.split_ratios != DataConfig().split_ratios:
        raise ConfigError("data.split_ratios", "is set but the split is 'given' (the data's x_label column), which "
                          "ignores it; set data.split=random, user_time or global_time to split by ratios")
    if not config.deduplicate:
        _check_repeats(dataset, split, allow_repeats)
    return PreparedData(dataset, split, report)


def _check_settings_apply(data_path: Path, config: DataConfig) -> None:
    """A table-format setting given for an MMRec or MovieLens dataset would be ignored: refuse it."""
    fmt = config.format if config.format != "auto" else detect_format(data_path)
    if fmt not in ("mmrec", "movielens"):
        return
    defaults = DataConfig()
    for key in TABLE_ONLY:
        if getattr(config, key) != getattr(defaults, key):
            hint = " (its features are the <modality>_feat.npy files)" if key == "features" and fmt == "mmrec" else ""
            raise ConfigError(f"data.{key}", f"applies to the table format only; {data_path} is read as {fmt}, "
                              f"which ignores it{hint}")


def _check_repeats(dataset: Dataset, split: Split, allow: bool) -> None:
    train_keys = split.train.users * split.num_items + split.train.items
    repeats = {part: np.isin(pairs.users * split.num_items + pairs.items, train_keys)
               for part, pairs in (("valid", split.valid), ("test", split.test))}
    count = sum(int(mask.sum()) for mask in repeats.values())
    if not count:
        return
    part, mask = next((part, mask) for part, mask in repeats.items() if mask.any())
    row = int(np.flatnonzero(mask)[0])
    pairs = getattr(split, part)
    example = (f"user '{dataset.user_ids.external[pairs.users[row]]}', "
               f"item '{dataset.item_ids.external[pairs.items[row]]}'")
    message = (f"data.deduplicate=false: {count} valid/test interactions repeat a training pair (first in {part}: "
               f"{example}) and could never be recommended (evaluation excludes training items); set "
               "data.deduplicate=true or remove the repeats")
    if not allow:
        raise DataFormatError(dataset.source, message)
    log.warning("%s: %s", dataset.source, message)
