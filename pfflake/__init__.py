"""pfflake: fast PANOSETI PFF I/O and a columnar data lake.

``from pfflake import PanosetiRun, PFFSequence`` replaces
``from pypff.io2 import PanosetiRun, PFFSequence``.
"""

from .errors import (
    CorruptFrameError,
    CorruptHeaderError,
    FileNameError,
    PFFError,
    PFFFormatError,
    TruncatedFrameError,
    UnknownProductError,
)
from .file import PFFFile, PFFWarning
from .products import PRODUCTS, DataProduct, get_product
from .run import PanosetiRun
from .sequence import PFFSequence

__version__ = "0.1.0"

__all__ = [
    "PRODUCTS",
    "CorruptFrameError",
    "CorruptHeaderError",
    "DataProduct",
    "FileNameError",
    "PFFError",
    "PFFFile",
    "PFFFormatError",
    "PFFSequence",
    "PFFWarning",
    "PanosetiRun",
    "TruncatedFrameError",
    "UnknownProductError",
    "get_product",
]
