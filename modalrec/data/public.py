"""Readers for published raw datasets, turned into a :class:`~modalrec.data.build.RawDataset` for the builder.

Each reader returns the interactions (``user_id``, ``item_id``, ``rating``, ``timestamp``) and an items
table with the id and content columns (texts, and local image paths), plus the columns the format
suggests for each modality. Errors name the file, the line and the field.

- Amazon Reviews (McAuley et al.; the 2014 and 2018 dumps): review lines with ``reviewerID``, ``asin``,
  ``overall``, ``unixReviewTime`` and metadata lines with ``asin``, ``title``, ``description`` (a string or a
  list), ``categories`` (nested lists, 2014) or ``category`` (a list, 2018), and image URLs (``imUrl``,
  ``imageURLHighRes``, ``image``). Lines are strict JSON or, as in the 2014 metadata, Python literals;
  ``.gz`` files are read as they are. URLs are not fetched: an item has an image only when
  ``<images>/<asin>.jpg`` exists, otherwise its URL is kept and reported as missing content.
- Yelp Open Dataset: ``review.json`` (``user_id``, ``business_id``, ``stars``, ``date``), ``business.json``
  (``business_id``, ``name``, ``categories``, ``city``, ``state``) and optionally ``photos.json``
  (``photo_id``, ``business_id``, ``caption``, ``label``): each business gets its first photo in file order,
  ``<images>/<photo_id>.jpg`` (``images`` defaults to the ``photos`` folder beside ``photos.json``).
- MovieLens: 100K (``u.data`` + ``u.item``), 1M (``ratings.dat`` + ``movies.dat``) or the CSV style
  (``interactions.csv`` + ``items.csv`` with ``item_id``, ``title``, ``year``, ``genres`` and a ``poster``
  path); posters come from ``<images>/<movie_id>.jpg`` when that folder is given.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalrec.data.build import RawDataset, TableColumns, read_raw_tables
from modalrec.data.readers import ML100K_GENRES
from modalrec.data.tables import (
    CONTROL_CHARACTERS,
    column_as_float,
    column_as_id,
    column_as_int,
    read_table,
    require_file,
    shown_value,
)
from modalrec.errors import ConfigError, DataFormatError

PUBLIC_FORMATS = ("amazon", "yelp", "movielens")
GZIP_MAGIC = b"\x1f\x8b"
CONTROL_CHARACTER = re.compile(CONTROL_CHARACTERS)
TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def read_public(
    fmt: str, interactions: Path, items: Path, *, images: Path | None = None, photos: Path | None = None
) -> RawDataset:
    """Dispatch to the reader of ``fmt`` (amazon, yelp or movielens)."""
    if fmt == "amazon":
        return read_amazon(interactions, items, images=images)
    if fmt == "yelp":
        return read_yelp(interactions, items, photos=photos, images=images)
    if fmt == "movielens":
        return read_movielens_raw(interactions, items, images=images)
    raise ConfigError("--format", f"expected one of table, {', '.join(PUBLIC_FORMATS)}, got '{fmt}'")


# ---------------------------------------------------------------------------------------------
# JSON lines

def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each non-blank line: a JSON object or a Python dict literal.

    A gzip file (by its first bytes, whatever its name) is decompressed on the fly.
    """
    require_file(path, "file")
    with open(path, "rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    number = 0
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                text = _decoded(raw, path, number).strip()
                if text:
                    yield number, _parse_record(text, path, number)
    except (OSError, EOFError) as exc:
        raise DataFormatError(path, f"cannot read the file: {exc}", line=number + 1) from None


def _decoded(raw: bytes, path: Path, line: int) -> str:
    """One line as UTF-8 text; the first may start with a byte-order mark."""
    try:
        return raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        utf16 = " (the file is UTF-16)" if line == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise DataFormatError(path, f"not valid UTF-8 text: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
                                    f"{utf16}; save the file as UTF-8", line=line) from None


def _parse_record(text: str, path: Path, line: int) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except RecursionError:
        raise DataFormatError(path, "expected a JSON object, found values nested too deeply", line=line) from None
    except ValueError:
        try:
            with warnings.catch_warnings():  # an unknown escape such as '\e' is kept as written, not warned about
                warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
                record = ast.literal_eval(text)  # the 2014 Amazon metadata dumps hold Python literals
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise DataFormatError(path, f"expected a JSON object, found {text[:60]!r}", line=line) from None
    if not isinstance(record, dict):
        raise DataFormatError(path, f"expected a JSON object, found a {type(record).__name__}", line=line)
    return record


def _text(record: dict[str, Any], key: str, path: Path, line: int) -> str:
    """A required id-like field as a non-empty string."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip() \
            or CONTROL_CHARACTER.search(str(value)):
        raise DataFormatError(path, f"expected a non-empty id without control characters, found {shown_value(value)}",
                              line=line, field=key)
    return str(value).strip()


def _number(record: dict[str, Any], key: str, path: Path, line: int) -> float:
    value = record.get(key)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        number = float("nan")
    if isinstance(value, bool) or not np.isfinite(number):
        raise DataFormatError(path, f"expected a number, found {shown_value(value)}", line=line, field=key)
    return number


def _optional_text(value: Any) -> str:
    """A free-text field: a string, a (nested) list of strings joined by spaces, or empty."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(part for part in (_optional_text(v) for v in value) if part)
    return str(value).strip()


def _flat_unique(value: Any) -> list[str]:
    """Strings of a (nested) list in first-seen order without repeats; a comma-separated string is split."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return list(dict.fromkeys(s for v in value for s in _flat_unique(v)))
    return [str(value)]


def _frame(rows: list[dict[str, Any]], lines: list[int], path: Path, what: str) -> pd.DataFrame:
    if not rows:
        raise DataFormatError(path, f"no {what}; expected at least one line")
    return pd.DataFrame(rows, index=pd.Index(lines))


def _local_image(images: Path | None, stem: str) -> str:
    if images is None:
        return ""
    path = images / f"{stem}.jpg"
    return str(path) if path.is_file() else ""


def _image_roots(images: Path | None) -> tuple[Path, ...]:
    if images is not None and not images.is_dir():
        raise DataFormatError(images, "image folder not found")
    return (images,) if images is not None else ()


# ---------------------------------------------------------------------------------------------
# Amazon Reviews

def read_amazon(reviews: Path, metadata: Path, *, images: Path | None = None) -> RawDataset:
    """Amazon review lines plus metadata lines (JSON or Python literals, optionally gzip)."""
    roots = _image_roots(images)
    interactions, lines = [], []
    for line, record in iter_json_lines(reviews):
        interactions.append({
            "user_id": _text(record, "reviewerID", reviews, line),
            "item_id": _text(record, "asin", reviews, line),
            "rating": _number(record, "overall", reviews, line),
            "timestamp": _number(record, "unixReviewTime", reviews, line),
        })
        lines.append(line)
    items, item_lines = [], []
    for line, record in iter_json_lines(metadata):
        asin = _text(record, "asin", metadata, line)
        items.append({
            "item_id": asin,
            "title": _optional_text(record.get("title")),
            "description": _optional_text(record.get("description")),
            "categories": ", ".join(_flat_unique(record.get("categories", record.get("category")))),
            "image": _local_image(images, asin) or _first_url(record),
        })
        item_lines.append(line)
    return RawDataset(
        interactions=_frame(interactions, lines, reviews, "reviews"),
        items=_frame(items, item_lines, metadata, "items"),
        interactions_file=reviews,
        items_file=metadata,
        extra_roots=roots,
        default_columns={"image": ("image",), "text": ("title", "description", "categories")},
        format="amazon",
    )


def _first_url(record: dict[str, Any]) -> str:
    for key in ("imUrl", "imageURLHighRes", "imageURL", "image"):
        value = record.get(key)
        urls = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        for url in urls:
            if isinstance(url, str) and url.strip():
                return url.strip()
    return ""


# ---------------------------------------------------------------------------------------------
# Yelp Open Dataset

def read_yelp(
    reviews: Path, business: Path, *, photos: Path | None = None, images: Path | None = None
) -> RawDataset:
    """Yelp ``review.json`` + ``business.json`` (+ ``photos.json`` and its photo folder)."""
    if photos is not None and images is None:
        images = photos.parent / "photos"
    roots = _image_roots(images) if photos is not None else ()
    interactions, lines = [], []
    for line, record in iter_json_lines(reviews):
        interactions.append({
            "user_id": _text(record, "user_id", reviews, line),
            "item_id": _text(record, "business_id", reviews, line),
            "rating": _number(record, "stars", reviews, line),
            "timestamp": _date_seconds(record, "date", reviews, line),
        })
        lines.append(line)
    first_photo = _first_photos(photos) if photos is not None else {}
    items, item_lines = [], []
    for line, record in iter_json_lines(business):
        business_id = _text(record, "business_id", business, line)
        photo_id, caption = first_photo.get(business_id, ("", ""))
        items.append({
            "item_id": business_id,
            "name": _optional_text(record.get("name")),
            "categories": ", ".join(_flat_unique(record.get("categories"))),
            "city": _optional_text(record.get("city")),
            "state": _optional_text(record.get("state")),
            "photo": _local_image(images, photo_id) if photo_id else "",
            "caption": caption,
        })
        item_lines.append(line)
    defaults: dict[str, tuple[str, ...]] = {"text": ("name", "categories", "city")}
    if photos is not None:
        defaults["image"] = ("photo",)
    return RawDataset(
        interactions=_frame(interactions, lines, reviews, "reviews"),
        items=_frame(items, item_lines, business, "businesses"),
        interactions_file=reviews,
        items_file=business,
        extra_roots=roots,
        default_columns=defaults,
        format="yelp",
    )


def _date_seconds(record: dict[str, Any], key: str, path: Path, line: int) -> float:
    value = record.get(key)
    try:
        stamp = pd.Timestamp(value, tz="UTC") if isinstance(value, str) else None
    except ValueError:
        stamp = None
    if stamp is None or pd.isna(stamp):
        raise DataFormatError(path, f"expected a date such as '2016-03-09 00:00:00', found {value!r}", line=line,
                              field=key)
    return float(stamp.timestamp())


def _first_photos(photos: Path) -> dict[str, tuple[str, str]]:
    """business_id -> (photo_id, caption) of its first photo in file order."""
    first: dict[str, tuple[str, str]] = {}
    for line, record in iter_json_lines(photos):
        business_id = _text(record, "business_id", photos, line)
        if business_id not in first:
            first[business_id] = (_text(record, "photo_id", photos, line), _optional_text(record.get("caption")))
    return first


# ---------------------------------------------------------------------------------------------
# MovieLens

def read_movielens_raw(ratings: Path, movies: Path, *, images: Path | None = None) -> RawDataset:
    """MovieLens 100K (``u.data``, ``u.item``), 1M (``ratings.dat``, ``movies.dat``) or the CSV style.

    The CSV style keeps every items column; a poster found in ``images`` replaces the ``poster`` column's.
    """
    roots = _image_roots(images)
    if ratings.name == "u.data" or ratings.suffix == ".dat":
        interactions = _ml_ratings(ratings)
        items = _ml100k_items(movies) if ratings.name == "u.data" else _ml1m_items(movies)
    else:
        table = read_raw_tables(ratings, movies, TableColumns())
        interactions, items = table.interactions, table.items
    if images is not None or "poster" not in items:
        given = items["poster"] if "poster" in items else pd.Series("", index=items.index)
        items["poster"] = [_local_image(images, i) or str(g) for i, g in zip(items["item_id"], given)]
    defaults: dict[str, tuple[str, ...]] = {"text": tuple(c for c in ("title", "year", "genres") if c in items)}
    if (items["poster"] != "").any():
        defaults["image"] = ("poster",)
    return RawDataset(interactions, items, ratings, movies, extra_roots=roots,
                      default_columns=defaults, format="movielens")


def _ml_ratings(path: Path) -> pd.DataFrame:
    names = ["user_id", "item_id", "rating", "timestamp"]
    frame = read_table(path, sep="\t" if path.name == "u.data" else "::", header=False, names=names)
    if frame.empty:
        raise DataFormatError(path, "no ratings; expected at least one line")
    return pd.DataFrame({
        "user_id": column_as_id(frame, "user_id", path),
        "item_id": column_as_id(frame, "item_id", path),
        "rating": column_as_float(frame, "rating", path),
        "timestamp": column_as_float(frame, "timestamp", path),
    }, index=frame.index)


def _ml100k_items(path: Path) -> pd.DataFrame:
    names = ["item_id", "title", "release", "video", "url", *ML100K_GENRES]
    frame = read_table(path, sep="|", header=False, names=names, encoding="latin-1")
    flags = np.stack([column_as_int(frame, g, path) for g in ML100K_GENRES], axis=1)
    titles = [_title_and_year(title, release) for title, release in zip(frame["title"], frame["release"])]
    return pd.DataFrame({
        "item_id": column_as_id(frame, "item_id", path),
        "title": [title for title, _ in titles],
        "year": [year for _, year in titles],
        "genres": ["|".join(g for g, on in zip(ML100K_GENRES, row) if on) for row in flags],
    }, index=frame.index)


def _ml1m_items(path: Path) -> pd.DataFrame:
    frame = read_table(path, sep="::", header=False, names=["item_id", "title", "genres"], encoding="latin-1")
    titles = [_title_and_year(title, "") for title in frame["title"]]
    return pd.DataFrame({
        "item_id": column_as_id(frame, "item_id", path),
        "title": [title for title, _ in titles],
        "year": [year for _, year in titles],
        "genres": frame["genres"].to_numpy(),
    }, index=frame.index)


def _title_and_year(title: str, release: str) -> tuple[str, str]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", "1995")``; the year falls back to the release date's."""
    match = TITLE_YEAR.match(title.strip())
    if match:
        return match.group(1), match.group(2)
    year = release.strip()[-4:]
    return title.strip(), year if year.isdigit() else ""
