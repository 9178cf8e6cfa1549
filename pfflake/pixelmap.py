"""Quabo pixel maps: MAROC readout channel <-> physical pixel <-> index in a quabo image.

A quabo (one of four boards on a module, ``quabo 0..3``) reads its 16x16
pixels through four MAROC chips of 64 channels each. Which channel sees which
pixel depends on the board type, ``"bga"`` or ``"qfp"``; the tables are
hardware facts shipped as data (``pfflake/data/pixelmaps.json``, from pypff
1.0.4 under the MIT licence, see ``pfflake/data/LICENSE-pypff-MIT.txt``).

Coordinates, all 0-based unless stated:

* ``loc = (channel, chip)``: MAROC channel 0..63 and chip 0..3, as quabo
  configs name a pixel;
* ``(x, y)``: the physical pixel on the quabo, **1-based** 1..16 in the
  ``maroc_to_phys`` table (as the source tables have it);
* ``index``: position ``row * 16 + col`` in the quabo's 16x16 image (ph256
  frames): the physical pixel turned by 90 degrees per quabo, so the four
  quabos of a module tile its 32x32 image.

Every array returned is read-only and shared (copy it to modify it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np

Board = Literal["bga", "qfp"]
BOARDS: tuple[str, ...] = ("bga", "qfp")
#: Side of one quabo's image in pixels.
QUABO_SIDE = 16
#: MAROC channels per chip, chips per quabo, quabos per module.
CHANNELS, CHIPS, QUABOS = 64, 4, 4


@cache
def _tables() -> dict[str, dict[str, np.ndarray]]:
    doc = json.loads(resources.files("pfflake").joinpath("data/pixelmaps.json").read_text())
    out: dict[str, dict[str, np.ndarray]] = {}
    for kind in ("maroc2phys", "phys2maroc"):
        out[kind] = {}
        for board in BOARDS:
            arr = np.asarray(doc[kind][board], dtype=np.int16)
            arr.flags.writeable = False
            out[kind][board] = arr
    return out


def _board(board: str) -> str:
    if board not in BOARDS:
        raise ValueError(f"unknown board version {board!r}; expected 'bga' or 'qfp'")
    return board


def maroc_to_phys(board: Board) -> np.ndarray:
    """``(64, 4, 2)`` int16: ``[channel, chip] -> (x, y)``, 1-based physical pixel."""
    return _tables()["maroc2phys"][_board(board)]


def phys_to_maroc(board: Board) -> np.ndarray:
    """``(16, 16, 2)`` int16: ``[x - 1, y - 1] -> (channel, chip)``."""
    return _tables()["phys2maroc"][_board(board)]


def _check_quabo(quabo: int) -> None:
    if quabo not in range(QUABOS):
        raise ValueError(f"quabo index must be 0..3, got {quabo!r}")


def _rotate(quabo: int, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Physical ``(i = y-1, j = x-1)`` -> image ``(row, col)`` for one quabo's orientation.

    Each quabo is the previous one turned by 90 degrees: (row, col) -> (col, 15 - row).
    """
    s = QUABO_SIDE - 1
    return {
        0: (j, s - i),
        1: (s - i, s - j),
        2: (s - j, i),
        3: (i, j),
    }[quabo]


def _unrotate(quabo: int, row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`_rotate`: image ``(row, col)`` -> physical ``(i, j)``."""
    s = QUABO_SIDE - 1
    return {
        0: (s - col, row),
        1: (s - row, s - col),
        2: (col, s - row),
        3: (row, col),
    }[quabo]


@cache
def data_index_table(board: Board) -> np.ndarray:
    """``(4, 64, 4)`` int16: ``[quabo, channel, chip] -> index`` in the quabo's 16x16 image."""
    phys = maroc_to_phys(board).astype(np.int64)
    i, j = phys[..., 1] - 1, phys[..., 0] - 1
    out = np.empty((QUABOS, CHANNELS, CHIPS), dtype=np.int16)
    for q in range(QUABOS):
        row, col = _rotate(q, i, j)
        out[q] = row * QUABO_SIDE + col
    out.flags.writeable = False
    return out


@cache
def pixel_loc_table(board: Board) -> np.ndarray:
    """``(4, 256, 2)`` int16: ``[quabo, index] -> (channel, chip)``; inverse of
    :func:`data_index_table`."""
    table = phys_to_maroc(board)
    row, col = np.divmod(np.arange(QUABO_SIDE * QUABO_SIDE), QUABO_SIDE)
    out = np.empty((QUABOS, QUABO_SIDE * QUABO_SIDE, 2), dtype=np.int16)
    for q in range(QUABOS):
        i, j = _unrotate(q, row, col)
        out[q] = table[j, i]
    out.flags.writeable = False
    return out


def data_index(quabo: int, board: Board, loc: Sequence[int]) -> int:
    """Index in the quabo image of the pixel at ``loc = (channel, chip)``."""
    _check_quabo(quabo)
    return int(data_index_table(board)[quabo, loc[0], loc[1]])


def pixel_loc(quabo: int, board: Board, index: int) -> list[int]:
    """``[channel, chip]`` of the pixel at ``index`` (0..255) of the quabo image."""
    _check_quabo(quabo)
    if not 0 <= index < QUABO_SIDE * QUABO_SIDE:
        raise IndexError(f"pixel index must be 0..255, got {index}")
    return [int(v) for v in pixel_loc_table(board)[quabo, index]]
