"""The exception hierarchy. The CLI catches :class:`ModalrecError`, prints one line and exits non-zero."""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Iterable
from pathlib import Path

LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


MAX_MESSAGE_CHARS = 300  # an error message never grows past this, whatever the input quoted in it
MAX_QUOTED_CHARS = 80  # a value quoted from the input is cut to this


def one_line(text: str) -> str:
    """``text`` with its line breaks (and the spaces around them) turned into single spaces."""
    return LINE_BREAKS.sub(" ", text.strip())


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, its head and tail kept around a note of what was cut.

    Messages quote input back (a value, a line of a file); a huge value must not make a huge message.
    """
    if len(text) <= limit:
        return text
    note = f" ...[{len(text) - limit} more characters]... "
    keep = max(limit - len(note), 2)
    head = keep * 3 // 4
    return text[:head] + note + text[len(text) - (keep - head):]


def quoted(value: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters. Nested containers are abbreviated while the
    repr is built (:mod:`reprlib`), so a value that expands to gigabytes costs no more than a small one."""
    return shorten(_BOUNDED_REPR.repr(value), limit)


def _bounded_repr() -> reprlib.Repr:
    bounded = reprlib.Repr()
    bounded.maxlevel = 3
    bounded.maxtuple = bounded.maxlist = bounded.maxarray = bounded.maxdict = bounded.maxset = 6
    bounded.maxfrozenset = bounded.maxdeque = 6
    bounded.maxstring = bounded.maxother = MAX_QUOTED_CHARS
    bounded.maxlong = 40
    return bounded


_BOUNDED_REPR = _bounded_repr()


class ModalrecError(Exception):
    """Root of every error modalrec raises on purpose."""


class DataFormatError(ModalrecError, ValueError):
    """Input data that cannot be read as documented.

    The message reads ``FILE:LINE: column 'C': expected X, found Y`` with the parts that are known.
    """

    def __init__(
        self,
        path: str | Path | None,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        message = shorten(one_line(message))
        self.detail = message
        where = shorten(self.path or "<data>", MAX_QUOTED_CHARS * 2)
        if line is not None:
            where += f":{line}"
        what = f"column '{field}': {message}" if field is not None else message
        super().__init__(f"{where}: {what}")


class ConfigError(ModalrecError, ValueError):
    """A configuration key or value that is unknown or invalid."""

    def __init__(self, key: str, message: str, *, file: str | Path | None = None) -> None:
        self.key = key
        message = shorten(one_line(message))
        self.detail = message
        self.file = None if file is None else str(file)
        prefix = f"{shorten(self.file, MAX_QUOTED_CHARS * 2)}: " if self.file else ""
        super().__init__(f"{prefix}config key '{shorten(one_line(str(key)), MAX_QUOTED_CHARS)}': {message}")


class UnknownNameError(ModalrecError, KeyError):
    """A name looked up in a registry that does not hold it; the message lists the choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)
        close = difflib.get_close_matches(name.lower(), self.choices, n=1, cutoff=0.6)
        self.suggestion = close[0] if close else None  # the nearest choice (difflib), for a typo
        hint = f"did you mean '{self.suggestion}'? " if self.suggestion else ""
        super().__init__(f"unknown {kind} '{name}'; {hint}choose one of: {', '.join(self.choices)}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class NotFittedError(ModalrecError):
    """A run folder or model that holds no trained state."""


class RunFolderError(ModalrecError):
    """A run folder that is missing, incomplete or would be overwritten."""


class WriteError(ModalrecError, OSError):
    """An output that could not be written (disk full, read-only folder, no permission).

    Raised by the atomic writers in :mod:`modalrec.io_utils`, so the earlier version of the file is left in
    place. It is an :class:`OSError` too, for callers that treat any failed write as recoverable.
    """

    def __init__(self, path: str | Path, cause: OSError) -> None:
        self.path = str(path)
        reason = cause.strerror or str(cause)
        hint = _WRITE_HINTS.get(cause.errno or 0, "")
        super().__init__(f"{path}: cannot write: {reason}{hint}")
        self.errno = cause.errno
        self.strerror = reason

    def __str__(self) -> str:  # OSError would otherwise print "[Errno N] reason"
        return str(self.args[0])


_WRITE_HINTS = {
    28: " (the disk is full; the earlier version of the file is kept)",  # ENOSPC
    122: " (the disk quota is exhausted; the earlier version of the file is kept)",  # EDQUOT
    30: " (the folder is on a read-only file system)",  # EROFS
    13: " (no permission to write there)",  # EACCES
}
