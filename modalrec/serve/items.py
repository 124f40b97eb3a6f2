"""The served catalogue: item ids, titles and pictures, and new items embedded from their content.

Titles and pictures come from the dataset's raw items table:

- a dataset built by ``modalrec data build`` has a ``manifest.json`` naming the items file, the content
  columns of each modality and the extractor (name and settings) that made each feature table;
- a dataset folder without one but with an ``items.csv`` (``item_id``, ``title``, ``image`` columns, as the
  demo shop writes) gives titles and pictures, but no way to embed new items;
- anything else (precomputed MMRec features) is served with ids only.

Pictures are read only from the content folder (the items file's folder); a path resolving elsewhere is
never served.

A new item (``POST /items``) runs through the same extractors as the dataset, then through the model's
:meth:`~modalrec.models.base.Recommender.content_item_vectors`. It is stored in ``new_items.parquet`` in the
first run's folder (one row per item: id, title, picture, text fields, the raw feature vector of each
modality), rewritten atomically on every addition and read back at start, when the vectors are
recomputed from the stored features by each served model. The rewrite runs beside the event loop (in the
threadpool), so its feature columns are built from numpy arrays kept for the purpose, never from Python
floats: a conversion of those would hold the interpreter lock, and so stall every request, for a time
growing with the items added.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from modalrec.features.table import FeatureTable
from modalrec.errors import ModalrecError
from modalrec.features.base import ContentError, Extractor, create_extractor, get_extractor
from modalrec.io_utils import write_bytes, write_with

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
BUILDER = "modalrec data build"
NEW_ITEMS_FILE = "new_items.parquet"
NEW_IMAGES_DIR = "new_item_images"
TITLE_COLUMNS = ("title", "name")
UPLOAD_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}
OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")
MAX_ITEM_ID_LENGTH = 200
MAX_UPLOAD_PIXELS = 40_000_000  # a bigger picture would take the extractor gigabytes to decode


class ServiceError(ModalrecError):
    """A request the service refuses, with the HTTP status to answer and a message saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------
# Where the dataset's raw content is

@dataclass(frozen=True)
class ModalitySource:
    """How one modality's feature table was made: content columns and extractor."""

    modality: str
    columns: tuple[str, ...]
    extractor: str
    settings: dict[str, Any]  # the extractor's config values


@dataclass(frozen=True)
class ContentSource:
    """The raw items table behind a dataset, the folders its content may come from, and its extractors."""

    folder: Path  # the dataset folder
    items_file: Path | None  # None: no titles, pictures or new items
    item_col: str = "item_id"
    title_col: str | None = None
    image_col: str | None = None
    roots: tuple[Path, ...] = ()  # content is read, and pictures served, only under these
    modalities: dict[str, ModalitySource] = field(default_factory=dict)  # empty unless built by the builder
    note: str = ""  # why new items cannot be added, when they cannot


def read_content_source(data_path: str | Path) -> ContentSource:
    """What the dataset at ``data_path`` (a folder or an interactions file) says about its raw content."""
    path = Path(data_path)
    folder = path if path.is_dir() else path.parent
    manifest = _read_manifest(folder / MANIFEST_FILE)
    if manifest is not None and manifest.get("builder") == BUILDER:
        return _built_source(folder, manifest)
    note = (f"new items need a dataset built by `modalrec data build` (with its {MANIFEST_FILE}); "
            f"{folder} has precomputed features only")
    items_file = folder / "items.csv"
    if items_file.is_file():
        header = _header(items_file)
        if "item_id" in header:
            return ContentSource(folder, items_file, "item_id", "title" if "title" in header else None,
                                 "image" if "image" in header else None, (folder.resolve(),), note=note)
    return ContentSource(folder, None, note=note)


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _built_source(folder: Path, manifest: dict[str, Any]) -> ContentSource:
    source = manifest.get("source") or {}
    modalities = {}
    for name, entry in (manifest.get("modalities") or {}).items():
        settings = entry.get("settings") or {}
        modalities[name] = ModalitySource(name, tuple(entry.get("columns") or ()), str(entry.get("extractor")),
                                          dict(settings.get("config") or {}))
    items_file = _locate(source.get("items"), folder)
    if items_file is None:
        note = f"the items file named in {folder / MANIFEST_FILE} ({source.get('items')}) is missing"
        return ContentSource(folder, None, modalities=modalities, note=note)
    if source.get("format", "table") != "table":
        note = f"new items are supported for datasets built from tables, not --format {source.get('format')}"
        return ContentSource(folder, None, modalities=modalities, note=note)
    header = _header(items_file)
    item_col = str(source.get("item_col") or "item_id")
    text = modalities.get("text")
    title_col = next((c for c in header if c.lower() in TITLE_COLUMNS), text.columns[0] if text else None)
    image = modalities.get("image")
    roots = [items_file.parent.resolve(), *(Path(r).resolve() for r in source.get("roots") or ())]
    return ContentSource(folder, items_file, item_col, title_col, image.columns[0] if image else None,
                         tuple(dict.fromkeys(roots)), modalities)


def _locate(value: object, folder: Path) -> Path | None:
    if not value:
        return None
    path = Path(str(value))
    for candidate in ([path] if path.is_absolute() else [folder / path, Path.cwd() / path]):
        if candidate.is_file():
            return candidate
    return None


def _header(items_file: Path) -> list[str]:
    from modalrec.data.build import read_any_table

    try:
        return [str(c) for c in read_any_table(items_file).columns]
    except (ModalrecError, OSError, ValueError) as exc:
        log.warning("%s: cannot read the items table (%s); serving ids only", items_file, exc)
        return []


def read_items_table(source: ContentSource) -> pd.DataFrame:
    """The items table as strings, one row per item id (the first of repeated ids), indexed by item id."""
    from modalrec.data.build import read_any_table

    if source.items_file is None:
        return pd.DataFrame()
    frame = read_any_table(source.items_file).fillna("").astype(str)
    if source.item_col not in frame.columns:
        return pd.DataFrame()
    frame = frame.drop_duplicates(source.item_col, keep="first")
    return frame.set_index(source.item_col, drop=False)


# ---------------------------------------------------------------------------------------------
# The catalogue

class Catalogue:
    """Item ids by index (the dataset's items, then new ones) with their titles and pictures.

    Appending is done under the service's lock; readers only ever see complete entries.
    """

    def __init__(self, item_ids: np.ndarray, source: ContentSource, *, uploads: Path) -> None:
        self.source = source
        self.uploads = uploads
        self.ids: list[str] = [str(i) for i in item_ids]
        self.index: dict[str, int] = {item: i for i, item in enumerate(self.ids)}
        self.num_base = len(self.ids)
        table = read_items_table(source)
        self.titles: list[str | None] = _column(table, source.title_col, self.ids)
        self.pictures: list[str | None] = _column(table, source.image_col, self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, item_id: str, title: str | None, picture: str | None) -> int:
        self.titles.append(title)
        self.pictures.append(picture)
        self.ids.append(item_id)
        self.index[item_id] = len(self.ids) - 1
        return len(self.ids) - 1

    def picture_file(self, item: int) -> Path | None:
        """The picture's file when it exists inside an allowed folder, else None."""
        value = self.pictures[item]
        if not value:
            return None
        if item >= self.num_base:
            roots: tuple[Path, ...] = (*self.source.roots, self.uploads.resolve())
        else:
            roots = self.source.roots
        base = self.source.items_file.parent if self.source.items_file else self.source.folder
        return safe_content_path(value, base, roots)

    def describe(self, item: int) -> dict[str, str | None]:
        """``{"item", "title", "image"}`` for responses; ``image`` is the picture's URL or None."""
        return {"item": self.ids[item], "title": self.titles[item],
                "image": f"/images/{urllib.parse.quote(self.ids[item], safe='')}" if self.pictures[item] else None}


def _column(table: pd.DataFrame, column: str | None, ids: list[str]) -> list[str | None]:
    if column is None or column not in table.columns:
        return [None] * len(ids)
    values = table[column].reindex(ids)
    return [v if isinstance(v, str) and v.strip() else None for v in values]


def safe_content_path(value: str, base: Path, roots: tuple[Path, ...]) -> Path | None:
    """``value`` (relative to ``base``) as a resolved regular file inside one of ``roots``, else None."""
    try:
        path = (base / value).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not any(path.is_relative_to(root) for root in roots):
        return None
    return path if path.is_file() else None


# ---------------------------------------------------------------------------------------------
# Embedding new items

@dataclass(frozen=True)
class NewItemContent:
    """What a client sent for a new item: text fields by column name and file paths by modality."""

    item_id: str
    texts: dict[str, str]
    files: dict[str, Path]  # modality -> a file inside an allowed folder (an upload saved, or a path given)
    title: str | None = None


class ContentEmbedder:
    """Features of a new item through the dataset's own extractors (created once, fitted on the catalogue's
    content when they are corpus-level, like TF-IDF).

    Args:
        source: the dataset's content, with its modalities' extractors.
        features: the dataset's feature tables (their dims and the mean fill for missing content).
        device: where the extractors run.
    """

    def __init__(self, source: ContentSource, features: Mapping[str, FeatureTable], device: str = "cpu") -> None:
        self.source = source
        self.tables = dict(features)
        self.device = device
        self._extractors: dict[str, Extractor] = {}
        self._lock = threading.Lock()

    def check_available(self) -> None:
        """Raise 409 when the dataset offers no way to embed new content."""
        if self.source.items_file is None or not self.source.modalities:
            raise ServiceError(409, f"cannot add items: {self.source.note}")

    def file_modalities(self) -> list[str]:
        return [m for m in self.source.modalities if get_extractor(self.source.modalities[m].extractor).kind != "text"]

    def text_columns(self) -> list[str]:
        text = [s for s in self.source.modalities.values() if get_extractor(s.extractor).kind == "text"]
        return [c for spec in text for c in spec.columns]

    def features(self, content: NewItemContent) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """One row of features per dataset modality, and how each was obtained (``content`` or ``mean``).

        Shapes: {modality: (1, F_m)} float32.
        """
        from modalrec.data.build import join_text

        self.check_available()
        rows: dict[str, np.ndarray] = {}
        how: dict[str, str] = {}
        for modality, table in self.tables.items():
            spec = self.source.modalities.get(modality)
            raw: str | Path | None = None
            if spec is not None:
                if get_extractor(spec.extractor).kind == "text":
                    raw = join_text(spec.columns, [content.texts.get(c, "").strip() for c in spec.columns]) or None
                else:
                    raw = content.files.get(modality)
            if raw is None:
                rows[modality], how[modality] = _mean_row(table), "mean"
                continue
            rows[modality], how[modality] = self._extract(modality, raw, table.dim), "content"
        if "content" not in how.values():
            wanted = self.text_columns() + [f"{m} (upload, or {m}_path)" for m in self.file_modalities()]
            raise ServiceError(422, f"the new item has no content; give at least one of: {', '.join(wanted)}")
        return rows, how

    def _extract(self, modality: str, raw: str | Path, dim: int) -> np.ndarray:
        extractor = self._extractor(modality)
        try:
            vector = extractor.embed([extractor.load(raw)])
        except ContentError as exc:
            raise ServiceError(422, f"{modality}: {exc}") from None
        if vector.shape != (1, dim):
            raise ServiceError(409, f"{modality}: the extractor '{extractor.name}' gives {vector.shape[1]} numbers "
                                    f"but the dataset's table has {dim}; was the dataset rebuilt with other settings?")
        return vector.astype(np.float32)

    def _extractor(self, modality: str) -> Extractor:
        with self._lock:
            if modality not in self._extractors:
                spec = self.source.modalities[modality]
                try:
                    extractor = create_extractor(spec.extractor, spec.settings, self.device)
                    if extractor.corpus_dependent:
                        extractor.fit(self._corpus(spec))
                except ModalrecError as exc:
                    raise ServiceError(409, f"{modality}: cannot set up the extractor '{spec.extractor}': {exc}") from None
                self._extractors[modality] = extractor
            return self._extractors[modality]

    def _corpus(self, spec: ModalitySource) -> list[str]:
        """The catalogue's texts in the builder's order, for corpus-level extractors to refit on."""
        from modalrec.data.build import join_text

        table = read_items_table(self.source)
        missing = [c for c in spec.columns if c not in table.columns]
        if missing:
            raise ModalrecError(f"{self.source.items_file}: no column {missing[0]}")
        texts = [join_text(spec.columns, [str(v).strip() for v in row])
                 for row in table[list(spec.columns)].itertuples(index=False)]
        return [t for t in texts if t.strip()]


def _mean_row(table: FeatureTable) -> np.ndarray:
    present = ~table.missing
    values = table.values[present] if present.any() else table.values
    return values.mean(axis=0, keepdims=True).astype(np.float32)


def check_item_id(item_id: str, catalogue: Catalogue) -> str:
    """A new item's id, stripped: 1 to MAX_ITEM_ID_LENGTH characters without control characters, not blank, and
    not in the catalogue yet. It is only ever a key: stored files are named by its hash, never by the id."""
    shown = item_id if len(item_id) < 60 else item_id[:57] + "..."
    if not 1 <= len(item_id) <= MAX_ITEM_ID_LENGTH or any(ord(ch) < 32 or ord(ch) == 127 for ch in item_id):
        raise ServiceError(422, f"item_id: expected 1 to {MAX_ITEM_ID_LENGTH} characters without control "
                                f"characters, got {shown!r} ({len(item_id)} characters)")
    item_id = item_id.strip()
    if not item_id:
        raise ServiceError(422, "item_id: blank")
    if item_id in (".", ".."):
        raise ServiceError(422, f"item_id: '{item_id}' cannot be an id (its picture URL would be a path segment)")
    if item_id in catalogue.index:
        raise ServiceError(409, f"item '{item_id}' is already in the catalogue")
    return item_id


def save_upload(data: bytes, content_type: str, item_id: str, folder: Path, max_bytes: int) -> Path:
    """Check an uploaded picture (size, declared type, real format) and store it in ``folder``.

    Raises:
        ServiceError: 413 when too large (bytes or pixels), 415 when not declared as a picture or not of a supported
            format, 422 when empty or corrupt.
    """
    if len(data) > max_bytes:
        raise ServiceError(413, f"image: the upload has over {max_bytes} bytes; at most {max_bytes} are accepted")
    if not data:
        raise ServiceError(422, "image: the upload is empty")
    if not content_type.startswith("image/"):
        raise ServiceError(415, f"image: expected an image/* upload, got content type '{content_type or 'none'}'")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            kind = picture.format or ""
            width, height = picture.size
            if width * height > MAX_UPLOAD_PIXELS:
                raise ServiceError(413, f"image: {width} x {height} pixels; at most {MAX_UPLOAD_PIXELS} are accepted")
            picture.verify()
    except UnidentifiedImageError:
        raise ServiceError(422, "image: not a readable picture (the data is in no picture format Pillow knows; "
                                f"send one of {', '.join(UPLOAD_FORMATS)})") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ServiceError(422, f"image: not a readable picture ({_without_addresses(exc)})") from None
    if kind not in UPLOAD_FORMATS:
        raise ServiceError(415, f"image: format {kind or 'unknown'} is not accepted; "
                                f"send one of {', '.join(UPLOAD_FORMATS)}")
    name = hashlib.sha256(item_id.encode()).hexdigest()[:16] + "-" + uuid.uuid4().hex[:8] + UPLOAD_FORMATS[kind]
    write_bytes(folder / name, data)
    return folder / name


def _without_addresses(error: Exception) -> str:
    """An exception's text without the ``<... object at 0x...>`` reprs some libraries put in it."""
    return OBJECT_REPR.sub("the upload", str(error)) or type(error).__name__


def image_path_inside(value: str, roots: tuple[Path, ...], base: Path, name: str = "image_path") -> Path:
    """A client-given content path, which must name a file inside ``roots`` (relative paths from ``base``),
    symbolic links resolved.

    Raises:
        ServiceError: 403 for a path outside the allowed folders, 400 for one that names no readable file.
    """
    from modalrec.data.build import resolve_content_path

    if "\x00" in value:
        raise ServiceError(400, f"{name}: a path cannot hold a NUL character")
    try:
        path, kind, reason = resolve_content_path(value.strip(), base, list(roots), allow_outside=False)
    except (OSError, ValueError) as exc:  # a name too long for the file system, and the like
        raise ServiceError(400, f"{name}: {value!r} cannot be read ({type(exc).__name__})") from None
    if kind == "outside":
        raise ServiceError(403, f"{name}: '{value}' is outside the folders pictures may come from")
    if path is None:
        raise ServiceError(400, f"{name}: '{value}': {reason}")
    return path


# ---------------------------------------------------------------------------------------------
# Persistence

@dataclass(frozen=True)
class StoredItem:
    item_id: str
    title: str | None
    picture: str | None  # absolute path of the picture file
    texts: dict[str, str]
    features: dict[str, np.ndarray]  # modality -> (F_m,) float32
    added_at: float


class NewItemStore:
    """``new_items.parquet`` in a run folder: every item added while serving, with its raw features."""

    def __init__(self, run_dir: Path) -> None:
        run_dir = Path(run_dir).absolute()  # stored picture paths must not depend on the working folder
        self.path = run_dir / NEW_ITEMS_FILE
        self.images = run_dir / NEW_IMAGES_DIR
        self._items: list[StoredItem] = []
        self._features: dict[str, _Rows] = {}  # modality -> the stored items' vectors, as written

    def load(self, tables: Mapping[str, FeatureTable]) -> list[StoredItem]:
        """Read the stored items; a modality the file lacks (or with another dim) gets the dataset's mean."""
        if not self.path.is_file():
            return []
        frame = pd.read_parquet(self.path)
        items = []
        for row in frame.to_dict("records"):
            features = {}
            for modality, table in tables.items():
                stored = row.get(f"feat_{modality}")
                vector = None if stored is None else np.asarray(stored, dtype=np.float32)
                if vector is None or vector.shape != (table.dim,):
                    log.warning("%s: item %s has no %d-d %s features; using the mean", self.path, row["item_id"],
                                table.dim, modality)
                    vector = _mean_row(table)[0]
                features[modality] = vector
            items.append(StoredItem(str(row["item_id"]), row.get("title") or None, self._picture(row.get("picture")),
                                    json.loads(row.get("texts") or "{}"), features, float(row.get("added_at", 0.0))))
        self._items = items
        self._features = {}
        log.info("loaded %d new items from %s", len(items), self.path)
        return items

    def _picture(self, stored: str | None) -> str | None:
        """A stored picture path as an absolute path; a relative one (written by a service started with a
        relative ``--run``) names its file in :attr:`images`."""
        if not stored or Path(stored).is_absolute():
            return stored or None
        return str(self.images / Path(stored).name)

    def append(self, item: StoredItem) -> None:
        """Rewrite the file with ``item`` added (atomically: a crash leaves the old or the new file)."""
        items = [*self._items, item]
        features = {m: self._rows(m).with_row(item.features[m]) for m in item.features}
        table = pa.table({
            "item_id": pa.array([i.item_id for i in items], pa.large_string()),
            "title": pa.array([i.title or "" for i in items], pa.large_string()),
            "picture": pa.array([i.picture or "" for i in items], pa.large_string()),
            "texts": pa.array([json.dumps(i.texts, sort_keys=True) for i in items], pa.large_string()),
            "added_at": pa.array(np.asarray([i.added_at for i in items], dtype=np.float64)),
            **{f"feat_{m}": rows.column() for m, rows in features.items()},
        })
        write_with(self.path, lambda handle: pq.write_table(table, handle), mode="wb")
        self._items, self._features = items, features

    def _rows(self, modality: str) -> _Rows:
        """The stored items' vectors of ``modality`` (gathered once, then kept)."""
        rows = self._features.get(modality)
        if rows is None:
            rows = _Rows.of([i.features[modality] for i in self._items])
        return rows


@dataclass(frozen=True)
class _Rows:
    """Equal-length vectors in the first ``count`` rows of a buffer that grows by doubling, so that adding one
    copies one vector, and a column of them is made from numpy, not from Python floats. Shared by successive
    versions: a version only ever reads its own first ``count`` rows, and later versions write past them."""

    buffer: np.ndarray  # (capacity, F) float64, the values the file holds (float32 features, widened)
    count: int

    @classmethod
    def of(cls, vectors: list[np.ndarray]) -> _Rows:
        if not vectors:
            return cls(np.zeros((0, 0)), 0)
        buffer = np.empty((2 * len(vectors), len(vectors[0])), dtype=np.float64)  # room for as many more
        for row, vector in enumerate(vectors):
            buffer[row] = vector
        return cls(buffer, len(vectors))

    def with_row(self, vector: np.ndarray) -> _Rows:
        row = np.asarray(vector, dtype=np.float64).reshape(1, -1)
        if self.count == 0:
            return _Rows(row.copy(), 1)
        buffer = self.buffer
        if self.count == len(buffer):
            buffer = np.concatenate([buffer, np.empty_like(buffer)])
        buffer[self.count] = row
        return _Rows(buffer, self.count + 1)

    def column(self) -> pa.Array:
        """A ``list<double>`` column, one list per row, as pandas writes lists of Python floats."""
        values = self.buffer[:self.count]
        offsets = np.arange(self.count + 1, dtype=np.int32) * values.shape[1]
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.reshape(-1)))


def stored_item(content: NewItemContent, features: dict[str, np.ndarray]) -> StoredItem:
    title = content.title or next((t.strip() for t in content.texts.values() if t.strip()), None)
    picture = content.files.get("image")
    return StoredItem(content.item_id, title, str(picture) if picture else None, dict(content.texts),
                      {m: f[0] for m, f in features.items()}, time.time())


# ---------------------------------------------------------------------------------------------
# An items table given on the command line (--items), for any run

ITEMS_FILE_COLUMNS = "item_id,title[,image]"


def items_file_source(path: str | Path) -> ContentSource:
    """The titles (and pictures) of an items table the user names with ``--items``: a CSV, TSV or Parquet
    file with the columns ``item_id`` and ``title`` (or ``name``), and optionally ``image``, a picture path
    relative to the table's folder (pictures are served only from that folder).

    This attaches titles and pictures to any run, e.g. one trained on an MMRec-layout dataset, whose folder
    has features but no items table.

    Raises:
        ModalrecError: naming the file when it is missing, unreadable or lacks a column.
    """
    from modalrec.data.build import read_any_table

    items_file = Path(path)
    if not items_file.is_file():
        raise ModalrecError(f"--items {items_file}: file not found (expected a table with columns {ITEMS_FILE_COLUMNS})")
    try:
        header = [str(c) for c in read_any_table(items_file).columns]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModalrecError(f"--items {items_file}: not a readable CSV/TSV/Parquet table ({_without_addresses(exc)})") from None
    title = next((c for c in header if c.lower() in TITLE_COLUMNS), None)
    if "item_id" not in header or title is None:
        missing = "item_id" if "item_id" not in header else "title"
        raise ModalrecError(f"--items {items_file}: no '{missing}' column; expected {ITEMS_FILE_COLUMNS}, "
                            f"found {', '.join(header[:10]) or 'no columns'}")
    return ContentSource(items_file.parent, items_file, "item_id", title, "image" if "image" in header else None,
                         (items_file.parent.resolve(),),
                         note="new items need a dataset built by `modalrec data build`; --items gives titles only")


def check_items_cover(source: ContentSource, item_ids: np.ndarray) -> None:
    """Refuse an items table that names none of the run's items (most likely another dataset's table), and
    warn about the run's items it leaves without a title."""
    table = read_items_table(source)
    ids = [str(i) for i in item_ids]
    known = int(table.index.isin(ids).sum()) if not table.empty else 0
    if known == 0:
        sample = ", ".join(list(table.index[:3])) or "none"
        raise ModalrecError(f"--items {source.items_file}: none of the run's {len(ids)} item ids is in it "
                            f"(its first ids: {sample}; the run's: {', '.join(ids[:3])})")
    if known < len(ids):
        log.warning("--items %s: %d of the run's %d items have no row there; they are shown by id",
                    source.items_file, len(ids) - known, len(ids))


def item_details(source: ContentSource, item_ids: list[str]) -> pd.DataFrame:
    """``title`` and ``image`` (the picture file's absolute path, when it exists in the table's folder) for
    ``item_ids``, indexed by item id; None where the table says nothing."""
    table = read_items_table(source)
    titles = _column(table, source.title_col, item_ids)
    pictures = _column(table, source.image_col, item_ids)
    base = source.items_file.parent if source.items_file else source.folder
    files = [safe_content_path(p, base, source.roots) if p else None for p in pictures]
    return pd.DataFrame({"title": pd.Series(titles, dtype=object),  # None stays None (not NaN) where unknown
                         "image": pd.Series([str(f) if f else None for f in files], dtype=object)}
                        ).set_axis(pd.Index(item_ids, name="item_id"))
