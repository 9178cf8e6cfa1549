"""pfflake: fast PANOSETI PFF I/O and a columnar data lake.

``from pfflake import PanosetiRun, PFFSequence`` replaces
``from pypff.io2 import PanosetiRun, PFFSequence``.
"""

from ._version import __version__ as __version__
from .errors import (
    CommitConflict,
    ConfigError,
    CorruptFrameError,
    CorruptHeaderError,
    FileNameError,
    FrameNotFoundError,
    LakeError,
    PFFError,
    PFFFormatError,
    PfflakeError,
    QueryError,
    TimeOverflowError,
    TruncatedFrameError,
    UnknownProductError,
    ZarrLayoutError,
)
from .file import PFFFile, PFFWarning
from .products import PRODUCTS, DataProduct, get_product
from .run import PanosetiRun
from .sequence import PFFSequence


def __getattr__(name: str):
    """``pfflake.Lake`` without importing pyarrow/duckdb for readers that never use it."""
    if name == "Lake":
        from .lake import Lake

        return Lake
    raise AttributeError(f"module 'pfflake' has no attribute {name!r}")

__all__ = [
    "PRODUCTS",
    "CommitConflict",
    "ConfigError",
    "CorruptFrameError",
    "CorruptHeaderError",
    "DataProduct",
    "FileNameError",
    "FrameNotFoundError",
    "Lake",
    "LakeError",
    "PFFError",
    "PFFFile",
    "PFFFormatError",
    "PFFSequence",
    "PFFWarning",
    "PanosetiRun",
    "PfflakeError",
    "QueryError",
    "TimeOverflowError",
    "TruncatedFrameError",
    "UnknownProductError",
    "ZarrLayoutError",
    "get_product",
]
