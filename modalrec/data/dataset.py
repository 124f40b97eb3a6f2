"""The typed values that flow out of the readers: id maps, feature tables and the dataset."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modalrec.errors import DataFormatError
from modalrec.features.table import FeatureTable
from modalrec.io_utils import write_with


@dataclass(frozen=True)
class IdMap:
    """Original ids (as strings) by contiguous index: ``external[i]`` is the id of index ``i``."""

    external: np.ndarray  # (n,) object array of str

    def __len__(self) -> int:
        return len(self.external)

    @classmethod
    def from_values(cls, values: Iterable[object]) -> IdMap:
        return cls(np.asarray([str(v) for v in values], dtype=object))

    @classmethod
    def identity(cls, n: int) -> IdMap:
        return cls.from_values(range(n))

    def lookup(self) -> dict[str, int]:
        return {external: index for index, external in enumerate(self.external)}

    def indices_of(self, ids: Iterable[object], *, kind: str = "id") -> np.ndarray:
        """Indices of original ids; an unknown id raises :class:`DataFormatError`."""
        table = self.lookup()
        result = []
        for value in ids:
            key = str(value)
            if key not in table:
                raise DataFormatError(None, f"unknown {kind} '{key}' (not in the dataset)")
            result.append(table[key])
        return np.asarray(result, dtype=np.int64)

    def subset(self, keep: np.ndarray) -> IdMap:
        return IdMap(self.external[keep])

    def save(self, path: str | Path, column: str) -> None:
        frame = pd.DataFrame({"index": np.arange(len(self)), column: self.external})
        write_with(path, lambda handle: frame.to_csv(handle, index=False))

    @classmethod
    def load(cls, path: str | Path, column: str) -> IdMap:
        frame = pd.read_csv(path, dtype={column: str}, keep_default_na=False)
        return cls(frame[column].to_numpy(dtype=object))


@dataclass(frozen=True)
class Dataset:
    """Interactions as contiguous indices, the id maps back to the user's ids, and item features."""

    name: str
    users: np.ndarray  # (n,) int64 user index
    items: np.ndarray  # (n,) int64 item index
    user_ids: IdMap
    item_ids: IdMap
    ratings: np.ndarray | None = None  # (n,) float32
    timestamps: np.ndarray | None = None  # (n,) float64
    labels: np.ndarray | None = None  # (n,) int8 given split: 0 train, 1 valid, 2 test
    item_roles: np.ndarray | None = None  # (num_items,) int8 given cold split: 0 warm, 1 cold-valid, 2 cold-test
    features: dict[str, FeatureTable] = dataclasses.field(default_factory=dict)
    source: str = ""

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def num_interactions(self) -> int:
        return len(self.users)

    def select(self, rows: np.ndarray) -> Dataset:
        """The same catalogue with only the interactions at ``rows`` (bool mask or indices)."""

        def pick(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[rows]

        return dataclasses.replace(
            self,
            users=self.users[rows],
            items=self.items[rows],
            ratings=pick(self.ratings),
            timestamps=pick(self.timestamps),
            labels=pick(self.labels),
        )
