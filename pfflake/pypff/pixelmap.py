"""pypff's ``pixelmap`` module, over :mod:`pfflake.pixelmap`.

``get_data_index`` / ``get_pixel_loc`` and the four tables
(``maroc2phys_bga``, ``maroc2phys_qfp``, ``phys2maroc_bga``,
``phys2maroc_qfp``, as dicts of nested lists like pypff's) are pypff's, with
one difference: **quabo 2**. pypff 1.0.4 maps quabo 2 one row too far
(indices 16..271 in a 256-pixel image; ``get_pixel_loc`` does not invert
``get_data_index`` and raises ``IndexError`` for 16 indices). pfflake turns
quabo 2 by 90 degrees like the other three (index = pypff's index - 16, and
the two functions are inverses for every pixel of every quabo). Quabos 0, 1
and 3 agree with pypff for every pixel of both boards (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import pixelmap as _pm

SRC_DIM = _pm.QUABO_SIDE
DST_DIM = _pm.QUABO_SIDE


def _table(kind: str, board: str) -> dict[str, Any]:
    key = {"maroc2phys": "pixel_map_maroc2phys", "phys2maroc": "pixel_map_phys2maroc"}[kind]
    arr = _pm.maroc_to_phys(board) if kind == "maroc2phys" else _pm.phys_to_maroc(board)
    return {key: arr.tolist()}


maroc2phys_bga = _table("maroc2phys", "bga")
maroc2phys_qfp = _table("maroc2phys", "qfp")
phys2maroc_bga = _table("phys2maroc", "bga")
phys2maroc_qfp = _table("phys2maroc", "qfp")


def _bver(bver: str) -> str:
    if bver not in _pm.BOARDS:
        raise Exception("Please specify the board version: bga or qfp")  # pypff's exception
    return bver


def get_data_index(qi: int, bver: str, loc: Sequence[int]) -> int:
    """Index in the quabo's 16x16 image of MAROC pixel ``loc = (channel, chip)``."""
    return _pm.data_index(qi, _bver(bver), loc)  # type: ignore[arg-type]


def get_pixel_loc(qi: int, bver: str, index: int) -> list[int]:
    """``[channel, chip]`` of image pixel ``index`` of quabo ``qi``."""
    return _pm.pixel_loc(qi, _bver(bver), index)  # type: ignore[arg-type]


__all__ = [
    "DST_DIM",
    "SRC_DIM",
    "get_data_index",
    "get_pixel_loc",
    "maroc2phys_bga",
    "maroc2phys_qfp",
    "phys2maroc_bga",
    "phys2maroc_qfp",
]
