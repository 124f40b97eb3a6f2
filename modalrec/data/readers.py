"""Readers for the MMRec layout, generic CSV/Parquet tables and MovieLens 100K/1M files.

Every reader validates as it reads and raises :class:`~modalrec.errors.DataFormatError` naming the file,
line and column. Original ids are kept in :class:`~modalrec.data.dataset.IdMap` objects.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from modalrec.config import DataConfig
from modalrec.data.dataset import Dataset, FeatureTable, IdMap
from modalrec.data.tables import (
    column_as_float,
    column_as_id,
    column_as_int,
    read_id_lines,
    read_parquet,
    read_table,
    require_columns,
    require_rows,
    require_file,
)
from modalrec.errors import DataFormatError

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")
MAX_INDEX = 2**31
"""MMRec indices must be below this (torch embedding tables and int32 sparse indices)."""
MAX_SPARSE_IDS = 10_000_000
"""Without a mapping file, an id space this large needs at least a tenth of its ids in use (else a typo in an
id would allocate a huge catalogue)."""
NPY_MAGIC = b"\x93NUMPY"


def load_dataset(path: str | Path, config: DataConfig | None = None) -> Dataset:
    """Read a dataset from a folder or file, choosing the reader from ``config.format`` or the files."""
    config = config or DataConfig()
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "dataset path not found")
    fmt = config.format if config.format != "auto" else detect_format(path)
    readers = {"mmrec": read_mmrec, "table": read_interaction_table, "movielens": read_movielens}
    if fmt == "coldrec":
        from modalrec.data.coldrec import read_coldrec

        dataset = read_coldrec(path, config)
    else:
        dataset = readers[fmt](path, config)
    if fmt == "mmrec" and (dataset_folder(path) / "cold_items.csv").is_file():
        from modalrec.data.coldrec import read_cold_items_file

        roles = read_cold_items_file(dataset_folder(path) / "cold_items.csv", dataset.item_ids)
        dataset = dataclasses.replace(dataset, item_roles=roles)
    if dataset.num_interactions == 0:
        raise DataFormatError(dataset.source, "no interactions; expected at least one row")
    return dataset


def dataset_folder(path: Path) -> Path:
    return path.parent if path.is_file() else path


def detect_format(path: Path) -> str:
    if path.is_file():
        if path.suffix == ".inter":
            return "mmrec"
        if path.name in ("u.data", "ratings.dat"):
            return "movielens"
        return "table"
    if list(path.glob("*.inter")):
        return "mmrec"
    if (path / "u.data").exists() or (path / "ratings.dat").exists():
        return "movielens"
    if (path / "warm_train.csv").is_file() or (path / "cold_item" / "warm_train.csv").is_file():
        return "coldrec"
    if any((path / f"interactions{suffix}").exists() for suffix in TABLE_SUFFIXES):
        return "table"
    raise DataFormatError(
        path,
        "cannot tell the dataset format: expected a *.inter file (MMRec layout), u.data or ratings.dat "
        "(MovieLens), interactions.csv/.parquet, or warm_train.csv (ColdRec's cold-start split)",
    )


# ---------------------------------------------------------------------------------------------
# MMRec layout

def read_mmrec(path: Path, config: DataConfig) -> Dataset:
    """``<name>.inter`` (TSV: userID, itemID[, rating, timestamp, x_label]) plus ``*_feat.npy`` files."""
    folder, inter = _find_inter_file(path)
    frame = read_table(inter, sep="\t")
    require_columns(frame, inter, ["userID", "itemID"])
    require_rows(frame, inter)
    users = column_as_int(frame, "userID", inter, what="a non-negative integer id")
    items = column_as_int(frame, "itemID", inter, what="a non-negative integer id")
    for name, column in (("userID", users), ("itemID", items)):
        if len(column) and column.min() < 0:
            _raise_at(frame, inter, name, column < 0, "a non-negative integer id")
        if len(column) and column.max() >= MAX_INDEX:
            _raise_at(frame, inter, name, column >= MAX_INDEX, f"an index below 2^31 (the MMRec layout numbers "
                      f"{name[:4]}s 0..n-1; for arbitrary ids read the file as a table: data.format=table)")
    users, user_ids = _interacting_only(users, _mapping_or_identity(folder / "u_id_mapping.csv", "user_id",
                                                                    "userID", users), inter, "user")
    feature_files = sorted(folder.glob("*_feat.npy"))
    item_count = _mmrec_item_count(folder, items, feature_files)
    item_ids = _mapping_or_identity(folder / "i_id_mapping.csv", "item_id", "itemID", items, item_count)
    if item_count is None and not (folder / "i_id_mapping.csv").exists():  # no content: a gap is not an item
        items, item_ids = _interacting_only(items, item_ids, inter, "item")
    features = {f.name[: -len("_feat.npy")]: read_npy_features(f, len(item_ids)) for f in feature_files}
    return Dataset(
        name=inter.stem,
        users=users,
        items=items,
        user_ids=user_ids,
        item_ids=item_ids,
        ratings=_optional_float(frame, "rating", inter),
        timestamps=_optional_float(frame, "timestamp", inter),
        labels=_optional_labels(frame, "x_label", inter),
        features=features,
        source=str(inter),
    )


def _find_inter_file(path: Path) -> tuple[Path, Path]:
    if path.is_file():
        return path.parent, path
    candidates = sorted(path.glob("*.inter"))
    if not candidates:
        raise DataFormatError(path, "no *.inter file in this folder (MMRec layout expected)")
    preferred = path / f"{path.name}.inter"
    if len(candidates) > 1 and preferred not in candidates:
        names = ", ".join(c.name for c in candidates)
        raise DataFormatError(path, f"several .inter files ({names}); pass the file itself")
    return path, preferred if preferred in candidates else candidates[0]


def _mmrec_item_count(folder: Path, items: np.ndarray, feature_files: list[Path]) -> int | None:
    """The catalogue size: the mapping file's length, else the feature files' rows, else max id + 1."""
    if (folder / "i_id_mapping.csv").exists() or not feature_files:
        return None
    rows = {f: _npy_rows(f) for f in feature_files}
    first = feature_files[0]
    for f, n in rows.items():
        if n != rows[first]:
            raise DataFormatError(f, f"has {n} rows but {first.name} has {rows[first]}; expected one row per item")
    needed = int(items.max()) + 1
    if rows[first] < needed:
        raise DataFormatError(
            first, f"has {rows[first]} rows; expected at least {needed} (row i = item id i, largest itemID is {needed - 1})"
        )
    return rows[first]


def _interacting_only(indices: np.ndarray, ids: IdMap, inter: Path, kind: str) -> tuple[np.ndarray, IdMap]:
    """Drop the indices no interaction uses (gaps in the MMRec numbering), renumbering the rest 0..n-1.

    An id that never occurs in the interactions is not a user (nor, without content, an item): keeping it
    would give it an untrained embedding that ``recommend`` would answer from. The original ids are kept.
    """
    used = np.unique(indices)
    if len(used) == len(ids):
        return indices, ids
    log.debug("%s: %d %s ids in 0..%d never occur in the interactions; they are not %ss", inter,
             len(ids) - len(used), kind, len(ids) - 1, kind)
    renumber = np.full(len(ids), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    return renumber[indices], ids.subset(used)


def _mapping_or_identity(
    mapping: Path, external_col: str, index_col: str, indices: np.ndarray, count: int | None = None
) -> IdMap:
    if not mapping.exists():
        if count is not None:
            return IdMap.identity(count)
        size = int(indices.max()) + 1
        if size > MAX_SPARSE_IDS and size > 10 * len(np.unique(indices)):
            raise DataFormatError(mapping.parent, f"column '{index_col}' uses indices up to {size - 1} but only "
                                  f"{len(np.unique(indices))} distinct ones; the MMRec layout numbers them 0..n-1 "
                                  f"(renumber them, add {mapping.name}, or set data.format=table)", field=index_col)
        return IdMap.identity(size)
    frame = read_table(mapping, sep="\t")
    require_columns(frame, mapping, [external_col, index_col])
    require_rows(frame, mapping, "id mappings")
    position = column_as_int(frame, index_col, mapping)
    out_of_range = (position < 0) | (position >= len(position))
    if out_of_range.any():
        _raise_at(frame, mapping, index_col, out_of_range, f"an index in 0..{len(position) - 1} (one row per index)")
    repeated_index = pd.Series(position).duplicated().to_numpy()
    if repeated_index.any():
        _raise_at(frame, mapping, index_col, repeated_index, "each index once (this one is repeated)")
    if len(indices) and indices.max() >= len(position):
        raise DataFormatError(mapping, f"maps {len(position)} ids but the interactions use index {indices.max()}",
                              field=index_col)
    ids = column_as_id(frame, external_col, mapping)
    repeated_id = pd.Series(ids).duplicated().to_numpy()
    if repeated_id.any():
        _raise_at(frame, mapping, external_col, repeated_id, "each id once (this one is repeated)")
    external = np.empty(len(position), dtype=object)
    external[position] = ids
    return IdMap(external)


def _npy_rows(path: Path) -> int:
    array = load_npy(path, mmap=True)
    return int(array.shape[0]) if array.ndim else 0


def load_npy(path: Path, *, mmap: bool = False) -> np.ndarray:
    """An ``.npy`` array without pickles; a missing, empty, truncated or foreign file raises DataFormatError."""
    require_file(path, "array file")
    with open(path, "rb") as handle:
        head = handle.read(len(NPY_MAGIC))
    if not head:
        raise DataFormatError(path, "file is empty; expected an .npy array")
    if head != NPY_MAGIC:
        raise DataFormatError(path, f"not a readable .npy file: it starts with {head!r}, not the NPY header (write it "
                                    "with numpy.save)")
    try:
        # mapping first checks the header against the file size, so a corrupt header claiming a huge shape
        # fails here instead of allocating memory
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        return array if mmap else np.array(array)
    except Exception as exc:  # numpy raises ValueError, EOFError, SyntaxError, TokenError... on corrupt headers
        text = str(exc)
        if "object" in text or "pickle" in text.lower():
            reason = "holds Python objects (dtype object); expected a numeric array"
        elif any(sign in text for sign in ("mmap length", "EOF", "cannot reshape", "read all data")):
            reason = f"truncated: the file is shorter than its header says ({text})"
        else:
            reason = f"not a readable .npy array ({type(exc).__name__}: {text})"
        raise DataFormatError(path, reason) from None


def read_npy_features(path: Path, num_items: int, row_ids: np.ndarray | None = None) -> FeatureTable:
    """A (num_items, dim) float matrix, row i for item index i, checked for shape and finite values.

    A sibling ``<modality>_missing.npy`` (bool, one per item), as written by ``modalrec data build``, marks
    the items whose content was missing and hold the fill value.
    """
    require_file(path, "feature file")
    array = load_npy(path)
    if array.ndim != 2 or array.dtype.kind not in "fiub":
        raise DataFormatError(path, f"expected a 2-D numeric array (items x dims), found shape {array.shape} {array.dtype}")
    if array.shape[1] == 0:
        raise DataFormatError(path, f"has shape {array.shape}: no feature columns; expected at least one")
    if array.shape[0] != num_items:
        raise DataFormatError(path, f"has {array.shape[0]} rows; expected {num_items}, one per item")
    missing_path = path.with_name(path.name.replace("_feat.npy", "_missing.npy"))
    missing = _read_missing_mask(missing_path, num_items) if missing_path != path and missing_path.exists() else None
    values = _finite_float32(array, path, row_ids)
    return FeatureTable(values, np.zeros(num_items, dtype=bool) if missing is None else missing, source=str(path))


def _read_missing_mask(path: Path, num_items: int) -> np.ndarray:
    mask = load_npy(path)
    if mask.shape != (num_items,) or mask.dtype != np.bool_:
        raise DataFormatError(path, f"expected a boolean array of shape ({num_items},), found {mask.shape} {mask.dtype}")
    return mask


def _finite_float32(array: np.ndarray, path: Path, row_ids: np.ndarray | None = None) -> np.ndarray:
    with np.errstate(over="ignore"):
        values = np.asarray(array, dtype=np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(x[0]) for x in np.nonzero(bad))
        where = f"item id {row_ids[row]}" if row_ids is not None else f"row {row}"
        found = array[row, col]
        beyond = " (beyond the float32 range)" if np.isfinite(found) else ""
        raise DataFormatError(path, f"{where}, column {col}: expected a finite number, found {found}{beyond}")
    return values


# ---------------------------------------------------------------------------------------------
# Generic interaction tables

def read_interaction_table(path: Path, config: DataConfig) -> Dataset:
    """A CSV/TSV/Parquet of interactions plus optional per-modality feature files from ``config.features``."""
    file = _find_table(path)
    frame = _read_any_table(file, config.sep)
    require_columns(frame, file, [config.user_col, config.item_col])
    require_rows(frame, file)
    raw_users = column_as_id(frame, config.user_col, file)
    raw_items = column_as_id(frame, config.item_col, file)
    user_ids = IdMap.from_values(pd.unique(raw_users))
    base = file.parent
    feature_frames = {name: _read_feature_source(base / rel, config, base) for name, rel in config.features.items()}
    # the catalogue: items with interactions first, then items that only have content (cold items)
    content_ids = [np.asarray(ids, dtype=object) for ids, _ in feature_frames.values()]
    item_ids = IdMap.from_values(pd.unique(np.concatenate([raw_items, *content_ids])))
    item_lookup = item_ids.lookup()
    features = {
        name: _align_features(ids, values, item_lookup, len(item_ids), base / config.features[name])
        for name, (ids, values) in feature_frames.items()
    }
    split_col = config.split_col or ("x_label" if "x_label" in frame.columns else "")
    return Dataset(
        name=file.stem,
        users=_index(raw_users, user_ids.lookup()),
        items=_index(raw_items, item_lookup),
        user_ids=user_ids,
        item_ids=item_ids,
        ratings=_optional_float(frame, config.rating_col, file),
        timestamps=_optional_float(frame, config.timestamp_col, file),
        labels=_optional_labels(frame, split_col, file, required=bool(config.split_col)),
        features=features,
        source=str(file),
    )


def _find_table(path: Path) -> Path:
    if not path.is_dir():
        return require_file(path, "interactions file")
    for suffix in TABLE_SUFFIXES:
        candidate = path / f"interactions{suffix}"
        if candidate.exists():
            return candidate
    raise DataFormatError(path, "no interactions.csv, .tsv or .parquet in this folder")


def _read_any_table(file: Path, sep: str) -> pd.DataFrame:
    if file.suffix == ".parquet":
        return read_parquet(file)
    return read_table(file, sep=sep or ("\t" if file.suffix in (".tsv", ".inter") else ","))


def _index(raw: np.ndarray, lookup: dict[str, int]) -> np.ndarray:
    return np.fromiter((lookup[v] for v in raw), dtype=np.int64, count=len(raw))


def _read_feature_source(path: Path, config: DataConfig, base: Path) -> tuple[list[str], np.ndarray]:
    """(item ids, values) from a Parquet keyed by item id or an .npy aligned to ``item_ids_file``."""
    if path.suffix == ".parquet":
        frame = read_parquet(path)
        require_rows(frame, path, "feature rows")
        id_col = config.item_col if config.item_col in frame.columns else frame.columns[0]
        ids = list(column_as_id(frame, id_col, path))
        rest = frame.drop(columns=[id_col])
        if len(rest.columns) == 1 and rest[rest.columns[0]].dtype == object:
            try:
                values = np.stack([np.asarray(v, dtype=np.float64) for v in rest[rest.columns[0]]])
            except (TypeError, ValueError):
                raise DataFormatError(path, "expected equal-length numeric vectors", field=str(rest.columns[0])) from None
        else:
            non_numeric = [c for c in rest.columns if rest[c].dtype.kind not in "fiu"]
            if non_numeric:
                raise DataFormatError(path, "expected numeric feature columns", field=str(non_numeric[0]))
            values = rest.to_numpy(dtype=np.float64)
    elif path.suffix == ".npy":
        if not config.item_ids_file:
            raise DataFormatError(path, "an .npy feature file needs data.item_ids_file naming the item of each row")
        ids_path = base / config.item_ids_file
        ids = read_id_lines(ids_path, "item id list")
        values = read_npy_features(path, len(ids), np.asarray(ids, dtype=object)).values
    else:
        raise DataFormatError(path, "expected a .npy or .parquet feature file")
    if values.ndim != 2 or values.shape[1] == 0:
        raise DataFormatError(path, f"expected one feature vector (at least one number) per item, found shape "
                                    f"{values.shape}")
    duplicates = pd.Index(ids)[pd.Index(ids).duplicated()]
    if len(duplicates):
        raise DataFormatError(path, f"item id '{duplicates[0]}' appears more than once")
    return ids, _finite_float32(values, path, np.asarray(ids, dtype=object))


def _align_features(
    ids: list[str], values: np.ndarray, lookup: dict[str, int], num_items: int, path: Path
) -> FeatureTable:
    table = np.zeros((num_items, values.shape[1]), dtype=np.float32)
    present = np.zeros(num_items, dtype=bool)
    rows = np.asarray([lookup[i] for i in ids], dtype=np.int64)
    table[rows] = values
    present[rows] = True
    if not present.all():
        table[~present] = values.mean(axis=0)
        log.info("%s: %d of %d items have no features; filled with the mean", path, (~present).sum(), num_items)
    return FeatureTable(table, ~present, source=str(path))


def _optional_float(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray | None:
    if not column or column not in frame.columns:
        return None
    return column_as_float(frame, column, path)


def _optional_labels(frame: pd.DataFrame, column: str, path: Path, required: bool = False) -> np.ndarray | None:
    if not column or column not in frame.columns:
        if required:
            raise DataFormatError(path, f"split column '{column}' not found", line=1)
        return None
    labels = column_as_int(frame, column, path, what="0 (train), 1 (valid) or 2 (test)")
    bad = (labels < 0) | (labels > 2)
    if bad.any():
        _raise_at(frame, path, column, bad, "0 (train), 1 (valid) or 2 (test)")
    return labels.astype(np.int8)


def _raise_at(frame: pd.DataFrame, path: Path, column: str, bad: np.ndarray, expected: str) -> None:
    line = int(frame.index[np.flatnonzero(bad)[0]])
    raise DataFormatError(path, f"expected {expected}, found {frame[column].loc[line]!r}", line=line, field=column)


# ---------------------------------------------------------------------------------------------
# MovieLens

ML100K_GENRES = (
    "unknown Action Adventure Animation Children's Comedy Crime Documentary Drama Fantasy Film-Noir Horror "
    "Musical Mystery Romance Sci-Fi Thriller War Western"
).split()


def read_movielens(path: Path, config: DataConfig) -> Dataset:
    """MovieLens 100K (``u.data`` + ``u.item``) or 1M (``ratings.dat`` + ``movies.dat``).

    Items get a ``genre`` modality (multi-hot) and a ``text`` modality (TF-IDF + SVD of title and genres).
    """
    folder = path if path.is_dir() else path.parent
    if (folder / "u.data").exists():
        ratings_file, names = folder / "u.data", ["user", "item", "rating", "timestamp"]
        ratings = read_table(ratings_file, sep="\t", header=False, names=names)
        movies = _read_ml100k_items(folder / "u.item")
    else:
        ratings_file = folder / "ratings.dat"
        ratings = read_table(ratings_file, sep="::", header=False, names=["user", "item", "rating", "timestamp"])
        movies = _read_ml1m_items(folder / "movies.dat")
    require_rows(ratings, ratings_file)
    users = column_as_int(ratings, "user", ratings_file)
    items = column_as_int(ratings, "item", ratings_file).astype(str)
    unknown = ~np.isin(items, movies.index.to_numpy())
    if unknown.any():
        _raise_at(ratings, ratings_file, "item", unknown, "a movie id listed in the movies file")
    user_ids = IdMap.from_values(np.unique(users))
    item_ids = IdMap.from_values(movies.index)
    genre = np.stack(list(movies["genres"])).astype(np.float32)
    from modalrec.features.simple import tfidf_svd

    texts = [f"{t}. Genres: {', '.join(g)}" for t, g in zip(movies["title"], movies["genre_names"], strict=True)]
    none_missing = np.zeros(len(item_ids), dtype=bool)
    return Dataset(
        name=folder.name,
        users=user_ids.indices_of(users),
        items=item_ids.indices_of(items),
        user_ids=user_ids,
        item_ids=item_ids,
        ratings=column_as_float(ratings, "rating", ratings_file),
        timestamps=column_as_float(ratings, "timestamp", ratings_file),
        features={
            "genre": FeatureTable(genre, none_missing, source=str(folder)),
            "text": FeatureTable(tfidf_svd(texts, dim=64), none_missing, source=str(folder)),
        },
        source=str(ratings_file),
    )


def _read_ml100k_items(path: Path) -> pd.DataFrame:
    names = ["item", "title", "release", "video", "url", *ML100K_GENRES]
    frame = read_table(path, sep="|", header=False, names=names, encoding="latin-1")
    require_rows(frame, path, "movies")
    flags = np.stack([column_as_int(frame, g, path) for g in ML100K_GENRES], axis=1)
    ids = _unique_movie_ids(frame, path)
    return pd.DataFrame(
        {
            "title": frame["title"].to_numpy(),
            "genres": list(flags),
            "genre_names": [[g for g, f in zip(ML100K_GENRES, row, strict=True) if f] for row in flags],
        },
        index=pd.Index(ids),
    )


def _unique_movie_ids(frame: pd.DataFrame, path: Path) -> np.ndarray:
    ids = column_as_int(frame, "item", path).astype(str)
    repeated = pd.Series(ids).duplicated().to_numpy()
    if repeated.any():
        _raise_at(frame, path, "item", repeated, "each movie id once (this one is repeated)")
    return ids


def _read_ml1m_items(path: Path) -> pd.DataFrame:
    frame = read_table(path, sep="::", header=False, names=["item", "title", "genres"], encoding="latin-1")
    require_rows(frame, path, "movies")
    ids = _unique_movie_ids(frame, path)
    genre_lists = [g.split("|") if g else [] for g in frame["genres"]]
    vocabulary = sorted({g for gs in genre_lists for g in gs})
    flags = np.asarray([[g in gs for g in vocabulary] for gs in genre_lists], dtype=np.int64)
    return pd.DataFrame(
        {"title": frame["title"].to_numpy(), "genres": list(flags), "genre_names": genre_lists},
        index=pd.Index(ids),
    )
