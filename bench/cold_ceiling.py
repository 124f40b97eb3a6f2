"""How far popularity alone goes on the cold task: rank each part's cold items by how many test (or valid)
interactions they really have, the same list for every user. No model can know these counts; the figure
is a reference point for cold recall@20, not a baseline.

    .venv/bin/python bench/cold_ceiling.py --data ../shared/datasets/ml100k-posters/mmrec [--cold-fraction 0.2] [--split-seed 2024]

Recall@k is hits over the user's cold targets, averaged over users with at least one cold target in the part,
ranking only that part's cold items (the cold task's default, ``eval.cold_candidates=split``).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from modalrec.config import DataConfig
from modalrec.data.prepare import prepare_data
from modalrec.data.split import Split


def oracle_popularity_recall(split: Split, part: str, k: int = 20) -> float:
    """Mean recall@k when every user gets the part's cold items ordered by their true count in the part."""
    candidates = np.flatnonzero(split.cold_items(part))
    pairs = getattr(split, part)
    on_cold = np.isin(pairs.items, candidates)
    users, items = pairs.users[on_cold], pairs.items[on_cold]
    counts = np.bincount(items, minlength=split.num_items)[candidates]
    top = set(candidates[np.argsort(-counts, kind="stable")[:k]].tolist())
    recalls = [len(top & set(items[users == user].tolist())) / np.sum(users == user) for user in np.unique(users)]
    return float(np.mean(recalls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--cold-fraction", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=2024)
    parser.add_argument("-k", type=int, default=20)
    args = parser.parse_args()
    split = prepare_data(args.data, DataConfig(cold_item_fraction=args.cold_fraction, split_seed=args.split_seed)).split
    print(json.dumps({part: round(oracle_popularity_recall(split, part, args.k), 4) for part in ("valid", "test")}))


if __name__ == "__main__":
    main()
