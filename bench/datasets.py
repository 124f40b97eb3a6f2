"""Benchmark datasets for ``bench/speed.py``, generated once into a cache folder outside the repository.

- ``ml100k``: ``../shared/datasets/ml100k-posters/mmrec`` as shipped (real features).
- ``baby``: Amazon Baby's real interactions (19,445 users x 7,050 items) with seeded random features of the
  real shapes (image 4096-d, text 384-d); the ``.inter`` is linked, never copied into the shared folder.
- ``elec``: an Amazon-Elec-sized generated dataset, 192,403 users x 63,001 items x 1,689,188 interactions,
  long-tailed item popularity, at least 5 interactions per user, a per-user 80/10/10 ``x_label``, and the
  same feature shapes.

The cache folder is ``$MODALREC_BENCH_DIR``, else ``/tmp/modalrec-bench``; the shared data folder is
``$MODALREC_SHARED_DATASETS``, else ``../shared/datasets`` beside the repository. ``python bench/datasets.py``
builds them ahead of time (the Elec-sized one takes about a minute and 1.1 GB of disk).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(os.environ.get("MODALREC_SHARED_DATASETS", Path(__file__).resolve().parents[2] / "shared/datasets"))
ML100K = SHARED / "ml100k-posters" / "mmrec"
BABY_INTER = SHARED / "amazon-baby" / "amazon-baby.inter"
FEATURE_DIMS = {"image": 4096, "text": 384}  # the shapes of MMRec's Amazon features
ELEC_USERS, ELEC_ITEMS, ELEC_INTERACTIONS = 192_403, 63_001, 1_689_188
MIN_PER_USER = 5  # Elec is a 5-core dataset
SEED = 2024


def cache_dir() -> Path:
    return Path(os.environ.get("MODALREC_BENCH_DIR", "/tmp/modalrec-bench"))


def dataset_path(name: str) -> Path:
    """The folder of benchmark dataset ``name`` (ml100k, baby or elec), generated on first use."""
    if name == "ml100k":
        return ML100K
    folder = cache_dir() / name
    if not (folder / f"{name}.inter").exists() or not all((folder / f"{m}_feat.npy").exists() for m in FEATURE_DIMS):
        {"baby": build_baby, "elec": build_elec}[name](folder)
    return folder


def write_random_features(folder: Path, num_items: int, seed: int) -> None:
    """``image_feat.npy`` and ``text_feat.npy``: seeded standard normal float32 tables of the real shapes."""
    rng = np.random.default_rng(seed)
    for modality, dim in FEATURE_DIMS.items():
        table = rng.standard_normal((num_items, dim), dtype=np.float32)
        np.save(folder / f"{modality}_feat.npy", table)


def build_baby(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "baby.inter"
    link.unlink(missing_ok=True)
    link.symlink_to(BABY_INTER)
    items = pd.read_csv(BABY_INTER, sep="\t", usecols=["itemID"])["itemID"]
    write_random_features(folder, int(items.max()) + 1, SEED)


def build_elec(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    users, items = elec_interactions(rng)
    labels = per_user_split(users, rng)
    frame = pd.DataFrame({"userID": users, "itemID": items, "x_label": labels})
    frame.to_csv(folder / "elec.inter.tmp", sep="\t", index=False)
    write_random_features(folder, ELEC_ITEMS, SEED + 1)
    (folder / "elec.inter.tmp").rename(folder / "elec.inter")


def elec_interactions(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs: long-tailed user activity and item popularity, every item used.

    Shapes: -> users, items (ELEC_INTERACTIONS,), sorted by user.
    """
    extra = rng.pareto(1.5, ELEC_USERS)  # heavy-tailed activity on top of the 5-core minimum
    extra *= (ELEC_INTERACTIONS - MIN_PER_USER * ELEC_USERS) / extra.sum()
    degree = MIN_PER_USER + np.floor(extra).astype(np.int64)
    degree = np.minimum(degree, ELEC_ITEMS // 4)
    shortfall = ELEC_INTERACTIONS - int(degree.sum())
    degree[rng.choice(ELEC_USERS, shortfall, replace=False)] += 1  # the floors lost < 1 per user
    users = np.repeat(np.arange(ELEC_USERS), degree)
    popularity = 1.0 / (np.arange(ELEC_ITEMS) + 10.0) ** 0.9  # Zipf-like, item 0 the most popular
    popularity = popularity[rng.permutation(ELEC_ITEMS)]
    items = rng.choice(ELEC_ITEMS, ELEC_INTERACTIONS, p=popularity / popularity.sum())
    covering = rng.choice(ELEC_INTERACTIONS, ELEC_ITEMS, replace=False)
    items[covering] = rng.permutation(ELEC_ITEMS)  # every item appears at least once
    redraw = np.ones(ELEC_INTERACTIONS, dtype=bool)
    redraw[covering] = False
    while True:  # redraw repeated (user, item) pairs among the popularity draws
        keys = users * ELEC_ITEMS + items
        order = np.lexsort((redraw, keys))  # within equal keys the fixed (covering) slot comes first
        repeated = np.zeros(ELEC_INTERACTIONS, dtype=bool)
        repeated[order[1:]] = keys[order[1:]] == keys[order[:-1]]
        if not repeated.any():
            return users, items
        items[repeated] = rng.choice(ELEC_ITEMS, int(repeated.sum()), p=popularity / popularity.sum())


def per_user_split(users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MMRec's per-user random rule: floor(0.8n) train, floor(0.1n) valid, the rest test; under 10
    interactions one valid and one test. ``users`` must be sorted.

    Shapes: (E,) -> (E,) labels 0 train, 1 valid, 2 test.
    """
    counts = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(users), dtype=np.int64)
    shuffled = np.argsort(users + rng.random(len(users)), kind="stable")  # random order within each user
    rank[shuffled] = np.arange(len(users)) - np.repeat(starts, counts)
    n = counts[users]
    num_train = np.where(n >= 10, np.floor(0.8 * n), n - 2).astype(np.int64)
    num_valid = np.where(n >= 10, np.floor(0.1 * n), 1).astype(np.int64)
    return np.where(rank < num_train, 0, np.where(rank < num_train + num_valid, 1, 2)).astype(np.int8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=["baby", "elec"], help="datasets to build (baby, elec)")
    for name in parser.parse_args().names:
        print(name, dataset_path(name))


if __name__ == "__main__":
    main()
