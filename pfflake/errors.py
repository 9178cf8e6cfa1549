"""The pfflake error hierarchy: one root, :class:`PfflakeError`.

::

    PfflakeError                    except pfflake.PfflakeError: anything pfflake raises on purpose
    ├── PFFError                    about PFF input: path, frame, byte offset
    │   ├── PFFFormatError(ValueError)
    │   │   ├── CorruptHeaderError
    │   │   └── CorruptFrameError
    │   ├── TruncatedFrameError(EOFError)
    │   ├── UnknownProductError(ValueError)
    │   ├── FileNameError(ValueError)
    │   ├── ConfigError(ValueError)          (pfflake.models)
    │   └── EmptyProductError(KeyError)      (pfflake.run)
    ├── ZarrLayoutError(ValueError)  a store or frame range that does not fit the layout
    ├── TimeOverflowError(ValueError) frame times beyond int64 ns (pfflake.timestamps)
    └── LakeError(RuntimeError)      the lake: ingest, log, queries
        ├── CommitConflict           another writer published the same version first
        └── QueryError(ValueError)   a query the lake cannot answer as asked
            └── FrameNotFoundError(LookupError)
                                     (and CalibrationNotFoundError in pfflake.caltables)

Every error about a PFF file carries ``path``, ``frame`` and ``offset`` (any of
them may be ``None`` when it does not apply) and names them in its message, so
a log line alone says where to look. Each class also subclasses the builtin
that fits, so callers can catch either the pfflake class or e.g. ``ValueError``
(``QueryError`` is both a ``RuntimeError``, through ``LakeError``, and a
``ValueError``, as it was before it joined the tree).

This module imports nothing of pfflake, so every layer can raise from it and
``import pfflake`` exports the whole tree at no cost. :class:`PFFWarning`, beside
the tree, is the base of pfflake's warnings (``pfflake.file`` re-exports it).
"""

from __future__ import annotations

from pathlib import Path


class PfflakeError(Exception):
    """The root of every error pfflake raises on purpose."""


class PFFError(PfflakeError):
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


class ConfigError(PFFError, ValueError):
    """A config file that does not parse or validate (pfflake.models.load_config).

    The message names the file and each problem (``loc: msg``) and never
    holds secret values from the file, so it is safe to log.
    """


class ZarrLayoutError(PfflakeError, ValueError):
    """A store or frame range that does not fit the layout pfflake writes."""


class LakeError(PfflakeError, RuntimeError):
    """A lake operation could not complete; the lake still reads as its last commit."""


class CommitConflict(LakeError):
    """Another writer published the same commit version first."""


class QueryError(LakeError, ValueError):
    """A query or query result the lake cannot answer as asked (says what was expected)."""


class FrameNotFoundError(QueryError, LookupError):
    """A requested frame is not committed in the lake (or not within the tolerance)."""


class TimeOverflowError(PfflakeError, ValueError):
    """Frame times that do not fit int64 ns; ``rows`` are positions in the input arrays.

    Raised by the vectorised functions of :mod:`pfflake.timestamps` (and re-exported
    there), which know rows but not files: the reader turns it into a
    :class:`CorruptHeaderError` naming file, frame and byte offset. ``rows`` is an
    int64 array, ``detail`` the reason as text.
    """

    def __init__(self, rows, detail: str) -> None:
        import numpy as np  # numpy loads with any reader; this module stays import-free

        self.rows = np.asarray(rows, dtype=np.int64)
        self.detail = detail
        super().__init__(f"frame time does not fit int64 ns since the UNIX epoch ({detail})")

    def __reduce__(self):  # the (rows, detail) constructor is not Exception's (message,)
        return (type(self), (self.rows, self.detail), dict(self.__dict__))


class PFFWarning(UserWarning):
    """Recoverable damage in a PFF file (e.g. a cut-short last frame), and the base of the
    warnings pfflake issues: ``warnings.simplefilter("error", pfflake.PFFWarning)`` turns
    every one of them into an error. (Moved here from :mod:`pfflake.file`, which
    re-exports it.)"""
