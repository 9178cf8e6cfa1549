"""A minimal PNG writer for frame quicklooks (no plotting dependency needed).

Frames are scaled linearly between their own min and max (or given limits)
to 8-bit grayscale and optionally enlarged by pixel repetition, since a
16x16 image is hard to see at its native size.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def to_gray8(image: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    lo = float(img.min()) if vmin is None else vmin
    hi = float(img.max()) if vmax is None else vmax
    if hi <= lo:
        return np.zeros(img.shape, dtype=np.uint8)
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)


def write_png(path: str | Path, image: np.ndarray, *, scale: int = 8,
              vmin: float | None = None, vmax: float | None = None) -> Path:
    """Write a 2-D array as an 8-bit grayscale PNG, each pixel ``scale`` x ``scale``."""
    gray = to_gray8(image, vmin, vmax)
    if scale > 1:
        gray = np.kron(gray, np.ones((scale, scale), dtype=np.uint8))
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[r].tobytes() for r in range(h))
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(raw, 6))
        + _chunk(b"IEND", b"")
    )
    path = Path(path)
    path.write_bytes(data)
    return path
