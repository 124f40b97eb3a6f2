"""FeatureTable: one modality's item features, the value extractors produce and datasets carry."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureTable:
    """One modality's item features: row ``i`` belongs to item index ``i``.

    Items without content hold a fill value (the mean of the present rows) and are flagged in ``missing``.
    """

    values: np.ndarray  # (num_items, dim) float32
    missing: np.ndarray  # (num_items,) bool
    source: str = ""

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    def subset(self, keep: np.ndarray) -> FeatureTable:
        return dataclasses.replace(self, values=self.values[keep], missing=self.missing[keep])
