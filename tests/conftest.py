"""Shared fixtures: small datasets written to temporary folders."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

# One torch thread: on a busy 2-core machine two threads ran the learning tests many times slower.
torch.set_num_threads(1)


def write_mmrec(
    folder: Path,
    rows: list[tuple[int, int, int]],
    *,
    name: str = "tiny",
    features: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``<name>.inter`` with (userID, itemID, x_label) rows plus ``<modality>_feat.npy`` files."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["userID\titemID\trating\ttimestamp\tx_label"]
    lines += [f"{u}\t{i}\t5\t{1000 + n}\t{label}" for n, (u, i, label) in enumerate(rows)]
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    for modality, values in (features or {}).items():
        np.save(folder / f"{modality}_feat.npy", values.astype(np.float32))
    return folder


def block_dataset(num_users: int = 24, num_items: int = 12, seed: int = 0) -> tuple[list[tuple[int, int, int]], np.ndarray]:
    """Users in 3 taste groups, each liking its own block of items; an item's feature reveals its block.

    Per user: all but two block items are train, one valid and one test.
    """
    rng = np.random.default_rng(seed)
    groups = 3
    block = num_items // groups
    rows = []
    for user in range(num_users):
        group = user % groups
        items = rng.permutation(np.arange(group * block, (group + 1) * block))
        labels = [0] * (len(items) - 2) + [1, 2]
        rows += [(user, int(item), label) for item, label in zip(items, labels)]
    features = np.zeros((num_items, groups + 2), dtype=np.float32)
    features[np.arange(num_items), np.arange(num_items) // block] = 1.0
    features[:, groups:] = rng.normal(size=(num_items, 2)) * 0.1
    return rows, features


@pytest.fixture()
def tiny_mmrec(tmp_path: Path) -> Path:
    rows, features = block_dataset()
    return write_mmrec(tmp_path / "tiny", rows, features={"image": features, "text": features[:, ::-1].copy()})


def load_script(path: Path, name: str) -> ModuleType:
    """A Python file that is not part of a package (bench/, docs/), imported under the private ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
