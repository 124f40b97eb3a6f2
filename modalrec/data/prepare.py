"""From a data path and the ``data`` settings to the filtered dataset and its split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modalrec.config import DataConfig
from modalrec.data.dataset import Dataset
from modalrec.data.filtering import FilterReport, filter_dataset
from modalrec.data.readers import load_dataset
from modalrec.data.split import Split, make_split


@dataclass(frozen=True)
class PreparedData:
    """The dataset after filtering, its split, and what the filter removed."""

    dataset: Dataset
    split: Split
    report: FilterReport


def prepare_data(data_path: str | Path, config: DataConfig) -> PreparedData:
    """Load ``data_path``, apply the k-core filter and make the split, as ``config`` says."""
    dataset, report = filter_dataset(load_dataset(data_path, config), config)
    return PreparedData(dataset, make_split(dataset, config), report)
