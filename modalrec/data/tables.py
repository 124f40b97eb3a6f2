"""Reading delimited and Parquet tables with errors that name the file, line and column."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from modalrec.errors import DataFormatError

HEADER_LINES = 1


def require_file(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataFormatError(path, f"{what} not found")
    if not path.is_file():
        raise DataFormatError(path, f"{what}: expected a file, found a folder")
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

    ``frame.index`` holds each row's 1-based line number in the file, for error messages.
    """
    require_file(path, "file")
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            header=0 if header else None,
            names=names,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding=encoding,
            engine="c" if len(sep) == 1 else "python",
        )
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, "file is empty; expected a header and interaction rows") from None
    except pd.errors.ParserError as exc:
        raise DataFormatError(path, f"malformed row: {_parser_message(exc)}") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not valid {encoding} text (byte {exc.start})") from None
    if header:
        frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
        # pandas renames a repeated header "a" to "a.1", "a.2", ...
        repeated = [c for c in frame.columns if c.rpartition(".")[0] in frame.columns and c.rpartition(".")[2].isdigit()]
        if repeated:
            raise DataFormatError(path, f"column '{repeated[0].rpartition('.')[0]}' appears more than once", line=1)
    frame.index = np.arange(len(frame)) + 1 + (HEADER_LINES if header else 0)
    blank = (frame == "").all(axis=1)
    frame = frame[~blank.to_numpy()]
    frame.attrs["sep"] = sep
    return frame


def _parser_message(exc: Exception) -> str:
    text = str(exc).strip()
    return text.replace("Error tokenizing data. C error: ", "")


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
        raise DataFormatError(
            path, f"missing column(s) {', '.join(missing)}; found columns {', '.join(map(str, frame.columns))}", line=1
        )


def require_rows(frame: pd.DataFrame, path: Path) -> None:
    if frame.empty:
        raise DataFormatError(path, "no interactions; expected at least one row after the header")


def column_as_int(frame: pd.DataFrame, column: str, path: Path, *, what: str = "an integer") -> np.ndarray:
    values = frame[column]
    if values.dtype.kind in "iu":
        return values.to_numpy(dtype=np.int64)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers % 1 != 0)
    if bad.any():
        _raise_bad_value(frame, column, path, bad, what)
    return numbers.to_numpy(dtype=np.int64)


def column_as_float(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = frame[column]
    numbers = values if values.dtype.kind in "iuf" else pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | ~np.isfinite(numbers.to_numpy(dtype=np.float64))
    if bad.any():
        _raise_bad_value(frame, column, path, bad, "a finite number")
    return numbers.to_numpy(dtype=np.float64)


def column_as_id(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = frame[column].astype(str).str.strip()
    bad = values == ""
    if bad.any():
        _raise_bad_value(frame, column, path, bad, "an id")
    return values.to_numpy(dtype=object)


def _raise_bad_value(frame: pd.DataFrame, column: str, path: Path, bad: pd.Series, what: str) -> None:
    line = int(frame.index[np.flatnonzero(bad.to_numpy())[0]])
    found = frame[column].loc[line]
    if found == "" and "sep" in frame.attrs:
        fields = _count_fields(path, line, frame.attrs["sep"])
        if fields is not None and fields < len(frame.columns):
            raise DataFormatError(path, f"expected {len(frame.columns)} columns, found {fields}", line=line)
    raise DataFormatError(path, f"expected {what}, found {found!r}", line=line, field=column)


def _count_fields(path: Path, line: int, sep: str) -> int | None:
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = next(itertools.islice(handle, line - 1, line), None)
    return None if text is None else len(text.rstrip("\r\n").split(sep))
