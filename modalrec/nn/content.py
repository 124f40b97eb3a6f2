"""Preparing item content for models: choosing modalities and scaling their feature tables."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from modalrec.errors import ConfigError


def select_modalities(model: str, wanted: tuple[str, ...], features: dict[str, Tensor]) -> list[str]:
    """The modalities a model reads: ``wanted``, or every one the dataset has when ``wanted`` is empty.

    Raises:
        ConfigError: naming the model, what it needs and what the dataset has.
    """
    if not features:
        raise ConfigError("model", f"{model} reads item content, but the dataset has no feature table (modality)")
    chosen = list(wanted) or sorted(features)
    unknown = [m for m in chosen if m not in features]
    if unknown:
        raise ConfigError(
            "model.modalities",
            f"{model} was asked for modality '{unknown[0]}', but the dataset has only: {', '.join(sorted(features))}",
        )
    return chosen


def standardize(table: Tensor) -> Tensor:
    """Centre each column and scale rows to unit average L2 norm, so modalities of any scale are comparable.

    Shapes: (I, F) -> (I, F).
    """
    centred = table - table.mean(0, keepdim=True)
    scale = centred.norm(dim=1).mean().clamp(min=1e-12)
    return centred / scale


def content_tables(
    model: str, wanted: tuple[str, ...], features: dict[str, Tensor], *, scale: bool = True
) -> dict[str, Tensor]:
    """``{modality: (I, F_m) float32 table}`` for the chosen modalities, standardised when ``scale``."""
    tables = {m: features[m].float() for m in select_modalities(model, wanted, features)}
    return {m: standardize(t) if scale else t for m, t in tables.items()}


def warm_item_mask(num_items: int, train_items: Tensor) -> Tensor:
    """(I, 1) float mask: 1 for items with at least one training interaction, 0 for cold items."""
    warm = torch.zeros(num_items, 1)
    warm[train_items] = 1.0
    return warm


class ContentScaler(nn.Module):
    """Standardises raw modality tables with statistics fitted once on the catalogue, and concatenates them.

    The same statistics then apply to new items (``forward`` on their raw rows), so a model can embed
    content it has never seen exactly as it embedded the catalogue.

    Shapes: {modality: (N, F_m)} -> (N, sum F_m).
    """

    def __init__(self, tables: dict[str, Tensor], *, scale: bool = True) -> None:
        super().__init__()
        self.modalities = list(tables)
        self.scale = scale
        for index, table in enumerate(tables.values()):
            table = table.float()
            centre = table.mean(0, keepdim=True)
            spread = (table - centre).norm(dim=1).mean().clamp(min=1e-12)
            self.register_buffer(f"centre_{index}", centre, persistent=False)
            self.register_buffer(f"spread_{index}", spread, persistent=False)

    def forward(self, tables: dict[str, Tensor]) -> Tensor:
        parts = []
        for index, modality in enumerate(self.modalities):
            table = tables[modality].float()
            if self.scale:
                table = (table - getattr(self, f"centre_{index}")) / getattr(self, f"spread_{index}")
            parts.append(table)
        return torch.cat(parts, dim=1)
