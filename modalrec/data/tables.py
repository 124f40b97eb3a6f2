"""Reading delimited and Parquet tables with errors that name the file, line and column."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalrec.errors import DataFormatError

HEADER_LINES = 1
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
MAX_EXACT_INT = 2**53
"""Integers are exact in float64 below this; larger ids in a file are refused rather than rounded."""
CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"
"""Refused inside ids: a line break or tab in an id would break the TSV files a build writes."""
FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def require_file(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataFormatError(path, f"{what} not found")
    if path.is_dir():
        raise DataFormatError(path, f"{what}: expected a file, found a folder")
    if not path.is_file():
        raise DataFormatError(path, f"{what}: expected a regular file, found a device, pipe or socket")
    return path


def read_table(
    path: Path,
    *,
    sep: str,
    header: bool = True,
    names: list[str] | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a delimited file as strings; blank lines are skipped and line numbers kept in the index.

    ``frame.index`` holds each row's 1-based line number in the file, for error messages. UTF-8 files may
    start with a byte-order mark; a file that starts with a UTF-16 byte-order mark is read as UTF-16.
    """
    require_file(path, "file")
    if path.stat().st_size == 0:
        raise DataFormatError(path, f"file is empty; expected {'a header row and data rows' if header else 'rows'}")
    if encoding == "utf-8" and _starts_with_utf16_bom(path):
        encoding = "utf-16"
    try:
        frame = pd.read_csv(
            path,
            sep=sep if len(sep) == 1 else re.escape(sep),  # pandas reads a longer separator as a regex
            header=0 if header else None,
            names=names,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding=encoding,
            engine="c" if len(sep) == 1 else "python",
        )
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, f"file is empty (blank lines only); expected "
                                    f"{'a header row and data rows' if header else 'rows'}") from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc) from None
    except UnicodeDecodeError:
        raise _encoding_error(path, encoding) from None
    if header:
        frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
        # pandas renames a repeated header "a" to "a.1", "a.2", ...
        repeated = [c for c in frame.columns if c.rpartition(".")[0] in frame.columns and c.rpartition(".")[2].isdigit()]
        if repeated:
            raise DataFormatError(path, f"column '{repeated[0].rpartition('.')[0]}' appears more than once", line=1)
        _refuse_nul(path, [str(c) for c in frame.columns], 1)
    frame.index = np.arange(len(frame)) + 1 + (HEADER_LINES if header else 0)
    blank = (frame == "").all(axis=1)
    frame = frame[~blank.to_numpy()]
    for column in frame.columns:
        has_nul = frame[column].str.contains("\x00", regex=False).to_numpy(dtype=bool)
        if has_nul.any():
            _refuse_nul(path, [], int(frame.index[np.flatnonzero(has_nul)[0]]), str(column))
    frame.attrs["sep"] = sep
    return frame


def read_id_lines(path: Path, what: str) -> list[str]:
    """One id per line (blank lines skipped), from UTF-8 text (a byte-order mark is allowed)."""
    require_file(path, what)
    try:
        text = path.read_bytes().decode("utf-16" if _starts_with_utf16_bom(path) else "utf-8-sig")
    except UnicodeDecodeError:
        raise _encoding_error(path, "utf-8") from None
    lines = [line.strip() for line in text.split("\n")]  # not splitlines(): U+2028 may be part of an id
    for number, line in enumerate(lines, start=1):
        if "\x00" in line:
            _refuse_nul(path, [], number, "item id")
    return [line for line in lines if line]


def _starts_with_utf16_bom(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) in UTF16_BOMS


def _refuse_nul(path: Path, names: list[str], line: int, field: str | None = None) -> None:
    if field is not None or any("\x00" in name for name in names):
        raise DataFormatError(path, "found a NUL byte; expected text (is this a binary file, or UTF-16 without a "
                                    "byte-order mark? save it as UTF-8)", line=line, field=field)


def _parser_error(path: Path, exc: Exception) -> DataFormatError:
    text = str(exc).strip().replace("Error tokenizing data. C error: ", "")
    fields = FIELD_COUNT.search(text)
    if fields:
        expected, line, found = (int(g) for g in fields.groups())
        return DataFormatError(path, f"expected {expected} columns, found {found} (a separator inside an unquoted "
                                     "value, or a stray separator?)", line=line)
    quote = OPEN_QUOTE.search(text)
    if quote:
        return DataFormatError(path, "a quoted value is never closed (a '\"' without its pair)",
                               line=int(quote.group(1)) + 1)
    return DataFormatError(path, f"malformed row: {text}")


def _encoding_error(path: Path, encoding: str) -> DataFormatError:
    """The first line that is not valid ``encoding`` text, with the offending byte's column."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                byte = raw[exc.start : exc.start + 1].hex()
                return DataFormatError(path, f"not valid {encoding.upper()} text: byte 0x{byte} at column "
                                             f"{exc.start + 1} (save the file as UTF-8)", line=number)
    return DataFormatError(path, f"not valid {encoding.upper()} text (save the file as UTF-8)")


def read_parquet(path: Path) -> pd.DataFrame:
    require_file(path, "file")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many unrelated types for corrupt files
        raise DataFormatError(path, f"not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    frame.index = np.arange(len(frame)) + 1
    return frame


def require_columns(frame: pd.DataFrame, path: Path, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        hint = _separator_hint(found, frame.attrs["sep"], "header") if len(frame.columns) == 1 and "sep" in frame.attrs else ""
        raise DataFormatError(path, f"missing column(s) {', '.join(missing)}; found columns {found}{hint}", line=1)


def require_rows(frame: pd.DataFrame, path: Path, what: str = "interactions") -> None:
    if frame.empty:
        raise DataFormatError(path, f"no {what}; expected at least one row after the header")


def column_as_int(frame: pd.DataFrame, column: str, path: Path, *, what: str = "an integer") -> np.ndarray:
    """Whole numbers as int64; anything else (text, fractions, NaN, beyond +-2^53) raises naming the line."""
    values = frame[column]
    _refuse_missing(frame, column, path, what)
    if values.dtype.kind in "iu" and (values.dtype.kind == "i" or len(values) == 0 or values.max() < MAX_EXACT_INT):
        return values.to_numpy(dtype=np.int64)
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    bad = numbers.isna() | (numbers % 1 != 0) | (numbers.abs() >= MAX_EXACT_INT)
    if bad.any():
        _raise_bad_value(frame, column, path, bad, what)
    return numbers.to_numpy(dtype=np.int64)


def column_as_float(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = frame[column]
    if values.dtype.kind == "M":  # Parquet timestamps: seconds since 1970
        values = (values - pd.Timestamp(0, tz=values.dt.tz)).dt.total_seconds()
    numbers = values if values.dtype.kind in "iufb" else pd.to_numeric(values, errors="coerce")
    numbers = numbers.astype(np.float64)
    bad = numbers.isna() | ~np.isfinite(numbers.to_numpy(dtype=np.float64))
    if bad.any():
        _raise_bad_value(frame, column, path, bad, "a finite number")
    return numbers.to_numpy(dtype=np.float64)


def column_as_id(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Ids as stripped strings. Text and integers are ids; a whole float (a Parquet column with gaps) is
    written without ``.0``; empty, missing (null/NaN), fractional and non-scalar values raise."""
    values = frame[column]
    _refuse_missing(frame, column, path, "an id")
    if values.dtype.kind in "fb":
        bad = (values % 1 != 0) | (values.abs() >= MAX_EXACT_INT) if values.dtype.kind == "f" else values == values
        if bad.any():
            _raise_bad_value(frame, column, path, bad, "an id (text or a whole number)")
        return values.astype(np.int64).astype(str).to_numpy(dtype=object)
    if values.dtype == object:
        scalar = values.map(lambda v: isinstance(v, str | bytes | int | np.integer) and not isinstance(v, bool))
        if not scalar.all():
            _raise_bad_value(frame, column, path, ~scalar, "an id (text or a whole number)")
        values = values.map(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
    text = values.astype(str).str.strip()
    bad = text == ""
    if bad.any():
        _raise_bad_value(frame, column, path, bad, "an id")
    control = text.str.contains(CONTROL_CHARACTERS, regex=True)
    if control.any():
        _raise_bad_value(frame, column, path, control, "an id without control characters (line breaks, tabs, NUL)")
    return text.to_numpy(dtype=object)


def _refuse_missing(frame: pd.DataFrame, column: str, path: Path, what: str) -> None:
    """Null/NaN cells (Parquet nulls; delimited files read as text have none) raise naming the row."""
    missing = frame[column].isna()
    if missing.any():
        _raise_bad_value(frame, column, path, missing, what)


def _raise_bad_value(frame: pd.DataFrame, column: str, path: Path, bad: pd.Series, what: str) -> None:
    line = int(frame.index[np.flatnonzero(bad.to_numpy(dtype=bool))[0]])
    found = frame[column].loc[line]
    if "sep" in frame.attrs:  # a short row (fields filled with "") explains itself better by its field count
        fields = _count_fields(path, line, frame.attrs["sep"])
        if fields is not None and fields < len(frame.columns):
            hint = _separator_hint(_line_text(path, line) or "", frame.attrs["sep"])
            raise DataFormatError(path, f"expected {len(frame.columns)} columns, found {fields}{hint}", line=line)
    raise DataFormatError(path, f"expected {what}, found {shown_value(found)}", line=line, field=column)


def shown_value(value: object) -> str:
    """A found value for a message: text quoted and cut at 60 characters, missing values as null."""
    scalar: Any = value
    if pd.api.types.is_scalar(scalar) and pd.isna(scalar):
        return "null (a missing value)"
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _count_fields(path: Path, line: int, sep: str) -> int | None:
    text = _line_text(path, line)
    return None if text is None else len(text.rstrip("\r\n").split(sep))


def _line_text(path: Path, line: int) -> str | None:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return next(itertools.islice(handle, line - 1, line), None)


def _separator_hint(text: str, sep: str, where: str = "line") -> str:
    """`` (the line holds ';' ...)`` when ``text`` contains a usual separator other than ``sep``, else ""."""
    names = {"\t": "a tab", ",": "','", ";": "';'", "|": "'|'"}
    others = [name for char, name in names.items() if char != sep and char in text]
    return f" (the {where} holds {others[0]} but the separator is {names.get(sep, repr(sep))}: " \
        f"{'mixed' if where == 'line' else 'wrong'} separator?)" if others else ""
