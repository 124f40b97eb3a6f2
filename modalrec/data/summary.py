"""The text printed by ``modalrec data info``."""

from __future__ import annotations

import numpy as np

from modalrec.data.prepare import PreparedData


def summarize(prepared: PreparedData) -> str:
    dataset, split, report = prepared.dataset, prepared.split, prepared.report
    density = dataset.num_interactions / max(dataset.num_users * dataset.num_items, 1)
    train_items = np.unique(split.train.items)
    lines = [
        f"dataset       {dataset.name}  ({dataset.source})",
        f"users         {dataset.num_users:,}",
        f"items         {dataset.num_items:,}  ({dataset.num_items - len(train_items):,} with no training interaction)",
        f"interactions  {dataset.num_interactions:,}",
        f"sparsity      {1 - density:.4%}  (density {density:.4%})",
        f"split         {split.method}: train {len(split.train):,}  valid {len(split.valid):,}  test {len(split.test):,}",
    ]
    if split.dropped_valid or split.dropped_test:
        lines.append(
            f"              dropped (user absent from train): valid {split.dropped_valid:,}  test {split.dropped_test:,}"
        )
    removed = {k: v for k, v in report.__dict__.items() if v}
    if removed:
        lines.append("filtered      " + "  ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in removed.items()))
    if dataset.features:
        lines.append("modalities")
        for name, table in sorted(dataset.features.items()):
            lines.append(f"  {name:<12}{table.dim:>6} dims  missing content for {int(table.missing.sum()):,} items")
    else:
        lines.append("modalities    none (ID-only data)")
    return "\n".join(lines)
