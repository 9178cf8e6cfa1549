"""Camera geometry of a PANOSETI module: pixel positions, neighbours, quabo layout.

A module's 32x32 image (``img16``, ``img8``, ``ph1024``) is tiled by four
quabo boards of 16x16 pixels. The DAQ assembles the module image from the four
quabo packets turning each board by a multiple of 90 degrees clockwise (the
boards are identical and mounted rotated about the module centre), as the
panoseti DAQ's image assembly does::

    rows  0..15:  quabo 0 (upper left,  90 deg)   quabo 1 (upper right, 180 deg)
    rows 16..31:  quabo 3 (lower left,   0 deg)   quabo 2 (lower right, 270 deg)

"upper" means rows 0..15 of the image array as the DAQ writes it. Quabo data
``in[i][j]`` (its packet's 16x16 order, a ``ph256`` frame) lands at module
``(row, col)``: quabo 0 ``(j, 15 - i)``, quabo 1 ``(15 - i, 31 - j)``, quabo 2
``(31 - j, 16 + i)``, quabo 3 ``(16 + i, j)``.

Pixel positions are in degrees on a uniform square grid centred on the module
centre, ``x`` growing with the column and ``y`` with the row (ctapipe's
rectangular-camera convention; the high-energy pipeline's ``x = col, y =
row``). Flat arrays follow image row-major order (``pixel = row * W + col``).
No sky orientation is implied: after a meridian flip images are turned by
180 degrees, which is the caller's business (``pfflake.images.rotate180``).

Plate scale: three values are in use in the collaboration (see
:data:`PLATE_SCALES`); the default is the high-energy pipeline's 9.9/32 deg,
which matches the published 9.9 deg field of view of a PANOSETI telescope.
Pass ``plate_scale_deg=`` (or a key of :data:`PLATE_SCALES`) to use another.

ph1024: the DAQ writes the top-right and bottom-left 16x16 blocks swapped.
``Camera.for_product("ph1024", fix_quadrants=True)`` (the default for ph1024)
gives each *raw* pixel its true position, so Hillas parameters of raw ph1024
images come out right; :func:`fix_ph1024_quadrants` reorders the images
themselves (for display and for cleaning, which works on image adjacency).

MAROC maps: which MAROC channel of which chip reads each pixel depends on
the board version (``"bga"`` or ``"qfp"``). The tables come from
:mod:`pfflake.pixelmap` (pypff compatibility work) when it is installed, or
from ``maroc_tables=`` (``{board: (4, 64, 4) int array}``: quabo, channel,
chip -> index in the quabo's 16x16 image), which wins when given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from . import pixelmap
from .products import get_product

#: Plate scales in use (degrees per pixel) and where each comes from.
PLATE_SCALES: dict[str, tuple[float, str]] = {
    "heap": (9.9 / 32, "high-energy pipeline: 9.9 deg field of view / 32 pixels (default)"),
    "ctapipe_instrument": (10.0 / 32, "ctapipe plugin instrument: 10 deg field / 32 pixels"),
    "ctapipe_sky": (
        float(np.degrees(np.arctan(3e-3 / 0.46))),
        "ctapipe plugin sky coordinates: 3 mm pixel / 0.46 m focal length (0.374 deg)",
    ),
}
DEFAULT_PLATE_SCALE = "heap"
QUABO_SIDE = 16
#: Quabo -> clockwise rotation (degrees) of its data in the module image.
QUABO_ROTATION_DEG: dict[int, int] = {3: 0, 0: 90, 1: 180, 2: 270}
#: Quabo -> (first row, first col) of its quadrant in the 32x32 module image.
QUABO_ORIGIN: dict[int, tuple[int, int]] = {0: (0, 0), 1: (0, 16), 2: (16, 16), 3: (16, 0)}


def plate_scale(value: float | str | None = None) -> tuple[float, str]:
    """``(deg per pixel, source)`` for a number, a :data:`PLATE_SCALES` key or None (default)."""
    if value is None:
        value = DEFAULT_PLATE_SCALE
    if isinstance(value, str):
        try:
            return PLATE_SCALES[value]
        except KeyError:
            raise ValueError(
                f"unknown plate scale {value!r}; known: {', '.join(PLATE_SCALES)} or a number"
            ) from None
    scale = float(value)
    if not scale > 0:
        raise ValueError(f"plate scale must be > 0 deg per pixel, got {value!r}")
    return scale, "given by the caller"


def quabo_to_module(quabo: int, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Module ``(row, col)`` of quabo data ``in[i][j]`` (its 16x16 packet order)."""
    i, j = np.asarray(i), np.asarray(j)
    s = QUABO_SIDE
    if quabo == 0:
        return j, s - 1 - i
    if quabo == 1:
        return s - 1 - i, 2 * s - 1 - j
    if quabo == 2:
        return 2 * s - 1 - j, s + i
    if quabo == 3:
        return s + i, j
    raise ValueError(f"quabo index must be 0..3, got {quabo!r}")


def module_from_quabos(quabo_images: np.ndarray) -> np.ndarray:
    """``(..., 4, 16, 16)`` quabo packets (quabo order 0..3) -> ``(..., 32, 32)`` module images
    (a new array), placed and rotated as the DAQ does."""
    q = np.asarray(quabo_images)
    if q.shape[-3:] != (4, QUABO_SIDE, QUABO_SIDE):
        raise ValueError(f"expected (..., 4, 16, 16) quabo images, got {q.shape}")
    out = np.empty((*q.shape[:-3], 2 * QUABO_SIDE, 2 * QUABO_SIDE), dtype=q.dtype)
    i, j = np.mgrid[0:QUABO_SIDE, 0:QUABO_SIDE]
    for k in range(4):
        r, c = quabo_to_module(k, i, j)
        out[..., r, c] = q[..., k, :, :]
    return out


def fix_ph1024_quadrants(images: np.ndarray) -> np.ndarray:
    """Swap the top-right and bottom-left 16x16 blocks of ``(..., 32, 32)`` ph1024 images
    (the DAQ writes them swapped). Returns a new array; applying it twice gives the input."""
    a = np.asarray(images)
    if a.shape[-2:] != (32, 32):
        raise ValueError(f"ph1024 quadrant fix needs (..., 32, 32) images, got {a.shape}")
    out = a.copy()
    out[..., :16, 16:] = a[..., 16:, :16]
    out[..., 16:, :16] = a[..., :16, 16:]
    return out


@dataclass(frozen=True, eq=False)  # identity equality/hash: fields hold numpy arrays
class Camera:
    """Geometry of one data product's images. Build with :meth:`for_product`.

    ``pix_x_deg``/``pix_y_deg``: flat ``(H * W,)`` float64, image row-major,
    the true position of each *stored* pixel (so for raw ph1024 with
    ``fix_quadrants`` the swapped blocks get their true positions).
    ``order``: ``(H * W,)`` physical -> stored permutation: ``images.reshape(N, -1)[:,
    order]`` puts pixels in physical row-major order (identity except ph1024 fix).
    """

    data_product: str
    shape: tuple[int, int]
    plate_scale_deg: float
    plate_scale_source: str
    pix_x_deg: np.ndarray
    pix_y_deg: np.ndarray
    order: np.ndarray
    quabo: int | None = None
    fix_quadrants: bool = False
    maroc_tables: Mapping[str, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def for_product(
        cls,
        data_product: str,
        *,
        plate_scale_deg: float | str | None = None,
        fix_quadrants: bool | None = None,
        quabo: int | None = None,
        maroc_tables: Mapping[str, np.ndarray] | None = None,
    ) -> Camera:
        """Camera of ``data_product`` (``img16``, ``img8``, ``ph1024``, ``ph256``).

        ``fix_quadrants``: ph1024 only (default True there). ``quabo``: ph256 only:
        place the 16x16 quabo image where that quabo sits in its module (rotated);
        default None: a 16x16 grid centred on 0 in the packet's own orientation.
        """
        product = get_product(data_product)
        h, w = product.image_shape
        scale, source = plate_scale(plate_scale_deg)
        if fix_quadrants is None:
            fix_quadrants = product.name == "ph1024"
        if fix_quadrants and product.name != "ph1024":
            raise ValueError(f"the quadrant fix applies to ph1024 only, not {product.name}")
        if quabo is not None and product.name != "ph256":
            raise ValueError("quabo= places a ph256 quabo image; module products have all four")
        rows, cols = np.divmod(np.arange(h * w), w)
        if quabo is not None:
            rows, cols = quabo_to_module(int(quabo), rows, cols)
            centre = (2 * QUABO_SIDE - 1) / 2
        else:
            centre = (h - 1) / 2
        if fix_quadrants:
            rows, cols = _swap_quadrants(rows, cols)
        x = (cols - centre) * scale
        y = (rows - centre) * scale
        order = np.arange(h * w)
        if fix_quadrants:
            order = np.argsort(rows * w + cols, kind="stable")
        for a in (x, y, order):
            a.flags.writeable = False
        return cls(product.name, (h, w), scale, source, x, y, order, quabo,
                   bool(fix_quadrants), maroc_tables)

    # -- geometry ---------------------------------------------------------------

    @property
    def n_pixels(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def pixel_size_deg(self) -> float:
        """Side of a (square) pixel in degrees (= the plate scale)."""
        return self.plate_scale_deg

    @property
    def pixel_area_deg2(self) -> float:
        return self.plate_scale_deg**2

    @cached_property
    def neighbors(self) -> list[np.ndarray]:
        """8-connected neighbours of each stored pixel (flat indices, ascending), from the
        true positions: pixels whose centres are at most one pixel apart in x and in y."""
        m = self.neighbor_matrix
        return [np.flatnonzero(m[p]) for p in range(self.n_pixels)]

    @cached_property
    def neighbor_matrix(self) -> np.ndarray:
        """``(P, P)`` bool, True where two stored pixels are 8-connected neighbours."""
        dx = np.abs(self.pix_x_deg[:, None] - self.pix_x_deg[None, :])
        dy = np.abs(self.pix_y_deg[:, None] - self.pix_y_deg[None, :])
        tol = 1.01 * self.plate_scale_deg
        m = (dx <= tol) & (dy <= tol)
        np.fill_diagonal(m, False)
        m.flags.writeable = False
        return m

    def to_physical(self, images: np.ndarray) -> np.ndarray:
        """``(..., H, W)`` stored images -> physical pixel order (a view when no reorder
        is needed, else a new array)."""
        a = np.asarray(images)
        if not self.fix_quadrants:
            return a
        flat = a.reshape(*a.shape[:-2], self.n_pixels)[..., self.order]
        return flat.reshape(a.shape)

    def from_physical(self, images: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_physical`."""
        a = np.asarray(images)
        if not self.fix_quadrants:
            return a
        out = np.empty_like(a.reshape(*a.shape[:-2], self.n_pixels))
        out[..., self.order] = a.reshape(*a.shape[:-2], self.n_pixels)
        return out.reshape(a.shape)

    # -- quabos -------------------------------------------------------------------

    @cached_property
    def quabo_of_pixel(self) -> np.ndarray:
        """``(H, W)`` int8: the quabo reading each stored pixel (module products), or the
        ``quabo`` given for ph256 (-1 when unknown)."""
        h, w = self.shape
        if (h, w) != (32, 32):
            return np.full((h, w), -1 if self.quabo is None else self.quabo, dtype=np.int8)
        out = np.empty((32, 32), dtype=np.int8)
        for q, (r0, c0) in QUABO_ORIGIN.items():
            out[r0 : r0 + 16, c0 : c0 + 16] = q
        if self.fix_quadrants:
            out = fix_ph1024_quadrants(out)
        return out

    @staticmethod
    def quabo_rotation_deg(quabo: int) -> int:
        """Clockwise rotation of quabo ``quabo``'s data in the module image."""
        return QUABO_ROTATION_DEG[int(quabo)]

    def _maroc_table(self, board: str) -> np.ndarray:
        if self.maroc_tables is not None:
            try:
                return np.asarray(self.maroc_tables[board])
            except KeyError:
                raise ValueError(f"no MAROC table for board {board!r} in maroc_tables") from None
        return np.asarray(pixelmap.data_index_table(board))

    def maroc_to_pixel(self, board: str) -> np.ndarray:
        """``(4, 64, 4)`` int: ``[quabo, channel, chip]`` -> flat stored pixel index in this
        camera's image (module products; ph256 with ``quabo``: -1 for other quabos)."""
        table = self._maroc_table(board).astype(np.int64)
        if table.shape != (4, 64, 4):
            raise ValueError(f"MAROC table for {board!r} must be (4, 64, 4), got {table.shape}")
        i, j = np.divmod(table, QUABO_SIDE)
        out = np.full(table.shape, -1, dtype=np.int64)
        h, w = self.shape
        for q in range(4):
            if (h, w) == (32, 32):
                r, c = quabo_to_module(q, i[q], j[q])
                if self.fix_quadrants:
                    r, c = _swap_quadrants(r, c)
                out[q] = r * w + c
            elif self.quabo is None or self.quabo == q:
                out[q] = table[q]
        return out

    def pixel_to_maroc(self, board: str) -> np.ndarray:
        """``(H * W, 3)`` int: stored pixel -> ``(quabo, channel, chip)`` (-1 where none)."""
        fwd = self.maroc_to_pixel(board)
        out = np.full((self.n_pixels, 3), -1, dtype=np.int64)
        q, ch, chip = np.nonzero(fwd >= 0)
        out[fwd[q, ch, chip]] = np.stack([q, ch, chip], axis=1)
        return out

    def describe(self) -> dict[str, Any]:
        """Plain-data summary (for provenance in tables and Zarr attributes)."""
        return {
            "data_product": self.data_product,
            "shape": list(self.shape),
            "plate_scale_deg": self.plate_scale_deg,
            "plate_scale_source": self.plate_scale_source,
            "fix_quadrants": self.fix_quadrants,
            "quabo": self.quabo,
        }


def _swap_quadrants(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True (row, col) of a raw ph1024 pixel stored at (rows, cols): TR <-> BL blocks."""
    rows, cols = np.asarray(rows).copy(), np.asarray(cols).copy()
    tr = (rows < 16) & (cols >= 16)
    bl = (rows >= 16) & (cols < 16)
    rows[tr], cols[tr] = rows[tr] + 16, cols[tr] - 16
    rows[bl], cols[bl] = rows[bl] - 16, cols[bl] + 16
    return rows, cols


__all__ = [
    "PLATE_SCALES",
    "QUABO_ORIGIN",
    "QUABO_ROTATION_DEG",
    "Camera",
    "fix_ph1024_quadrants",
    "module_from_quabos",
    "plate_scale",
    "quabo_to_module",
]
