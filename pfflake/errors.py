"""The pfflake error hierarchy.

Every error about a PFF file carries ``path``, ``frame`` and ``offset`` (any of
them may be ``None`` when it does not apply) and names them in its message, so
a log line alone says where to look. Each class also subclasses the builtin
that fits, so callers can catch either ``PFFError`` or e.g. ``ValueError``.
"""

from __future__ import annotations

from pathlib import Path


class PFFError(Exception):
    """Base class of every pfflake error about PFF data."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        frame: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = message
        self.path = Path(path) if path is not None else None
        self.frame = frame
        self.offset = offset
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.path is not None:
            where.append(f"file {self.path}")
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        if self.offset is not None:
            where.append(f"byte offset {self.offset}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def __reduce__(self):  # keep path/frame/offset across processes (Dask, multiprocessing)
        return (_rebuild, (type(self), self.reason, self.path, self.frame, self.offset))


def _rebuild(cls, reason, path, frame, offset):
    return cls(reason, path=path, frame=frame, offset=offset)


class PFFFormatError(PFFError, ValueError):
    """The bytes are not a PFF file we can read (no header, unknown layout)."""


class CorruptHeaderError(PFFFormatError):
    """A frame's JSON header does not parse or lacks required fields."""


class CorruptFrameError(PFFFormatError):
    """A frame's structure is broken (missing ``*`` image marker, bad length)."""


class TruncatedFrameError(PFFError, EOFError):
    """A frame is cut short by the end of the file."""


class UnknownProductError(PFFError, ValueError):
    """A file name names a data product pfflake does not know."""


class FileNameError(PFFError, ValueError):
    """A file or run directory name does not follow the PANOSETI conventions."""
