"""Given cold-start splits: ColdRec's file layout read and written, and a cold-items file for the MMRec layout.

ColdRec (github.com/YuanchenBei/ColdRec) keeps an item cold-start split as CSV files with the columns
``user,item`` (integer ids) in ``<dataset>/cold_item/``: ``warm_train.csv``, ``warm_val.csv``,
``warm_test.csv``, ``cold_item_val.csv`` and ``cold_item_test.csv``; the item content is
``<dataset>/<dataset>_item_content.npy`` (row i for item id i). :func:`read_coldrec` reads such a folder as a
dataset whose split and cold items are given; :func:`write_coldrec_split` writes one of our splits in that
layout, so that ColdRec's own code runs on identical data.

In the MMRec layout a given cold split is a file ``cold_items.csv`` next to the ``.inter`` file, with the
columns ``item_id`` (the dataset's item ids) and ``part`` (``valid`` or ``test``): every interaction of such
an item must be labelled valid or test in ``x_label``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from modalrec.config import DataConfig
from modalrec.data.dataset import Dataset, IdMap
from modalrec.data.readers import _npy_rows, read_npy_features
from modalrec.data.split import COLD_TEST, COLD_VALID, TEST, TRAIN, VALID, WARM, Split
from modalrec.data.tables import column_as_int, read_table, require_columns
from modalrec.errors import DataFormatError
from modalrec.features.table import FeatureTable
from modalrec.io_utils import write_text, write_with

COLD_FOLDER = "cold_item"
# file -> (split label, item role of its items: None for warm files)
COLDREC_FILES: dict[str, tuple[int, int | None]] = {
    "warm_train.csv": (TRAIN, None),
    "warm_val.csv": (VALID, None),
    "warm_test.csv": (TEST, None),
    "cold_item_val.csv": (VALID, COLD_VALID),
    "cold_item_test.csv": (TEST, COLD_TEST),
}
COLD_ITEMS_FILE = "cold_items.csv"
PARTS = {"valid": COLD_VALID, "test": COLD_TEST}


def is_coldrec_folder(path: Path) -> bool:
    """Whether ``path`` (or its ``cold_item`` subfolder) holds ColdRec's ``warm_train.csv``."""
    return path.is_dir() and ((path / "warm_train.csv").is_file() or (path / COLD_FOLDER / "warm_train.csv").is_file())


def read_coldrec(path: Path, config: DataConfig) -> Dataset:
    """A dataset from ColdRec's split files: the split is given (``labels``) and so are the cold items
    (``item_roles``). Ids are used as indices, as ColdRec does (``max id + 1`` users and items).

    Features: ``data.features`` (modality -> .npy path, relative to the dataset folder) when set; else every
    ``<modality>_feat.npy`` in the dataset folder; else ``<name>_item_content.npy`` as the modality ``content``.
    """
    split_folder = path if (path / "warm_train.csv").is_file() else path / COLD_FOLDER
    dataset_folder = split_folder.parent if split_folder.name == COLD_FOLDER else split_folder
    users, items, labels, roles_of_rows = [], [], [], []
    for name, (label, role) in COLDREC_FILES.items():
        file = split_folder / name
        if not file.is_file():
            raise DataFormatError(file, f"missing; a ColdRec split folder holds {', '.join(COLDREC_FILES)}")
        frame = read_table(file, sep=",")
        require_columns(frame, file, ["user", "item"])
        file_users = column_as_int(frame, "user", file, what="a non-negative integer id")
        file_items = column_as_int(frame, "item", file, what="a non-negative integer id")
        for column, values in (("user", file_users), ("item", file_items)):
            if len(values) and values.min() < 0:
                line = int(frame.index[int(np.argmax(values < 0))])
                raise DataFormatError(file, f"expected a non-negative integer id, found {values.min()}", line=line,
                                      field=column)
        users.append(file_users)
        items.append(file_items)
        labels.append(np.full(len(file_users), label, dtype=np.int8))
        roles_of_rows.append(np.full(len(file_users), WARM if role is None else role, dtype=np.int8))
        _check_cold_items_not_warm(name, file, frame, file_items, role, items, roles_of_rows)
    all_users, all_items = np.concatenate(users), np.concatenate(items)
    if not len(all_users):
        raise DataFormatError(split_folder, "no interactions in the ColdRec files")
    features = _coldrec_features(dataset_folder, config)
    num_items = max([int(all_items.max()) + 1, *(len(t.values) for t in features.values())])
    for table in features.values():
        if len(table.values) != num_items:
            raise DataFormatError(table.source, f"has {len(table.values)} rows; expected {num_items}, one per item id "
                                  f"0..{num_items - 1}")
    item_roles = np.full(num_items, WARM, dtype=np.int8)
    row_roles = np.concatenate(roles_of_rows)
    item_roles[all_items[row_roles != WARM]] = row_roles[row_roles != WARM]
    return Dataset(
        name=dataset_folder.name,
        users=all_users,
        items=all_items,
        user_ids=IdMap.identity(int(all_users.max()) + 1),
        item_ids=IdMap.identity(num_items),
        labels=np.concatenate(labels),
        item_roles=item_roles,
        features=features,
        source=str(split_folder),
    )


def _check_cold_items_not_warm(name: str, file: Path, frame: pd.DataFrame, file_items: np.ndarray, role: int | None,
                               items: list[np.ndarray], roles: list[np.ndarray]) -> None:
    """A cold file's items may appear in no warm file and in no other cold file."""
    if role is None:
        return
    earlier_items = np.concatenate(items[:-1]) if len(items) > 1 else np.zeros(0, dtype=np.int64)
    earlier_roles = np.concatenate(roles[:-1]) if len(roles) > 1 else np.zeros(0, dtype=np.int8)
    clash = np.isin(file_items, earlier_items[earlier_roles != role])
    if clash.any():
        row = int(np.argmax(clash))
        raise DataFormatError(file, f"item {file_items[row]} is a cold item of {name} but also appears in a warm file "
                              "or the other cold file; a cold item's interactions all belong to one cold file",
                              line=int(frame.index[row]), field="item")


def _coldrec_features(folder: Path, config: DataConfig) -> dict[str, FeatureTable]:
    if config.features:
        files = {name: folder / path for name, path in config.features.items()}
    else:
        files = {f.name[: -len("_feat.npy")]: f for f in sorted(folder.glob("*_feat.npy"))}
        if not files:
            files = {"content": f for f in sorted(folder.glob("*_item_content.npy"))[:1]}
    return {name: read_npy_features(file, _npy_rows(file)) for name, file in files.items()}


def read_cold_items_file(path: Path, item_ids: IdMap) -> np.ndarray:
    """Item roles from a ``cold_items.csv`` (columns ``item_id``, ``part`` = valid | test) in the MMRec layout.

    Shapes: -> (num_items,) int8.
    """
    frame = read_table(path, sep=",")
    require_columns(frame, path, ["item_id", "part"])
    lookup = item_ids.lookup()
    roles = np.full(len(item_ids), WARM, dtype=np.int8)
    for line, item, part in zip(frame.index, frame["item_id"], frame["part"], strict=True):
        if str(item) not in lookup:
            raise DataFormatError(path, f"unknown item id '{item}' (not in the dataset)", line=int(line), field="item_id")
        if str(part) not in PARTS:
            raise DataFormatError(path, f"expected valid or test, found '{part}'", line=int(line), field="part")
        roles[lookup[str(item)]] = PARTS[str(part)]
    return roles


# ---------------------------------------------------------------------------------------------
# Writing

def write_coldrec_split(dataset: Dataset, split: Split, out_dir: str | Path, name: str | None = None) -> Path:
    """Write ``split`` (made under the item cold-start protocol) in ColdRec's layout and return the folder.

    ``out_dir`` becomes ColdRec's ``data/<name>`` folder: ``cold_item/{warm_train,warm_val,warm_test,
    cold_item,cold_item_val,cold_item_test}.csv`` and ``cold_item/n_user_item.pkl`` (what ColdRec's
    ``convert.py`` reads to build its overall sets), ``<name>_item_content.npy`` (every modality side by
    side, in name order) and ``<modality>_feat.npy`` per modality (so :func:`read_coldrec` reads them back
    apart). Ids are our user and item indices.
    """
    if split.item_roles is None:
        raise DataFormatError(None, "the split has no cold items; make it with data.cold_item_fraction > 0")
    out = Path(out_dir)
    name = name or out.name
    folder = out / COLD_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    roles = split.item_roles
    cold_valid = roles[split.valid.items] == COLD_VALID
    cold_test = roles[split.test.items] == COLD_TEST
    parts = {
        "warm_train.csv": (split.train.users, split.train.items),
        "warm_val.csv": (split.valid.users[~cold_valid], split.valid.items[~cold_valid]),
        "warm_test.csv": (split.test.users[~cold_test], split.test.items[~cold_test]),
        "cold_item_val.csv": (split.valid.users[cold_valid], split.valid.items[cold_valid]),
        "cold_item_test.csv": (split.test.users[cold_test], split.test.items[cold_test]),
        "cold_item.csv": (np.concatenate([split.valid.users[cold_valid], split.test.users[cold_test]]),
                          np.concatenate([split.valid.items[cold_valid], split.test.items[cold_test]])),
    }
    for file, (users, items) in parts.items():
        write_text(folder / file, _user_item_csv(users, items))
    sizes = {"user": split.num_users, "item": split.num_items}
    write_with(folder / "n_user_item.pkl", lambda handle: pickle.dump(sizes, handle, protocol=4), "wb")
    if dataset.features:
        ordered = sorted(dataset.features)
        content = np.concatenate([dataset.features[m].values for m in ordered], axis=1).astype(np.float32)
        _save_npy(out / f"{name}_item_content.npy", content)
        for modality in ordered:
            _save_npy(out / f"{modality}_feat.npy", dataset.features[modality].values.astype(np.float32))
    return folder


def _save_npy(path: Path, array: np.ndarray) -> None:
    write_with(path, lambda handle: np.save(handle, array), "wb")


def _user_item_csv(users: np.ndarray, items: np.ndarray) -> str:
    lines = ["user,item", *(f"{u},{i}" for u, i in zip(users.tolist(), items.tolist(), strict=True))]
    return "\n".join(lines) + "\n"
