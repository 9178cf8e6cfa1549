"""A deliberately simple PFF parser: the independent truth for the test suite.

It imports nothing from ``pfflake`` on purpose and favours obviousness over
speed: walk the bytes, ``json.loads`` each header, ``np.frombuffer`` each
image. If pfflake and this file disagree, read this file first.

Format (PFF-FORMAT.md): a header text block starts with ``{`` and ends at the
first blank line ``\\n\\n``; the next byte is ``*``; then ``H*W*bytes_per_pixel``
raw little-endian pixel bytes, with the geometry named by the file name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# product -> (image shape, pixel dtype, header kind); hard-coded again on purpose.
NAIVE_PRODUCTS: dict[str, tuple[tuple[int, int], str, str]] = {
    "img16": ((32, 32), "<u2", "module"),
    "img8": ((32, 32), "u1", "module"),
    "ph1024": ((32, 32), "<i2", "module"),
    "ph256": ((16, 16), "<i2", "quabo"),
}

NS_PER_S = 1_000_000_000
TAI_MINUS_UTC = 37

OK = 0
NO_WR = 1
DESYNC = 2
QUABO_MISSING = 4


@dataclass
class NaiveFile:
    """Everything in one PFF data file, frame by frame."""

    path: Path
    product: str
    headers: list[dict] = field(default_factory=list)
    images: np.ndarray | None = None  # (N, H, W)
    offsets: list[int] = field(default_factory=list)  # byte offset of each frame's '{'
    truncated_tail_bytes: int = 0  # bytes of a trailing partial frame (dropped)


def product_from_name(path: str | Path) -> str:
    m = re.search(r"\.dp_([A-Za-z0-9]+)\.", Path(path).name)
    if not m:
        raise ValueError(f"{path}: no .dp_<product>. token in the file name")
    return m[1].lower()


def naive_read(path: str | Path, product: str | None = None) -> NaiveFile:
    """Parse a whole PFF data file; a trailing partial frame is dropped and counted."""
    path = Path(path)
    product = product or product_from_name(path)
    shape, dtype, _ = NAIVE_PRODUCTS[product]
    image_bytes = shape[0] * shape[1] * np.dtype(dtype).itemsize
    data = path.read_bytes()
    result = NaiveFile(path, product)
    images = []
    pos = 0
    while pos < len(data):
        if data[pos : pos + 1] != b"{":
            raise ValueError(f"{path}: expected '{{' at byte {pos}, got {data[pos : pos + 1]!r}")
        end = data.find(b"\n\n", pos)
        if end < 0 or end + 3 + image_bytes > len(data):
            result.truncated_tail_bytes = len(data) - pos
            break
        if data[end + 2 : end + 3] != b"*":
            raise ValueError(f"{path}: expected '*' at byte {end + 2}")
        result.headers.append(json.loads(data[pos:end]))
        result.offsets.append(pos)
        start = end + 3
        images.append(np.frombuffer(data, dtype, shape[0] * shape[1], start).reshape(shape))
        pos = start + image_bytes
    result.images = np.array(images) if images else np.empty((0, *shape), dtype)
    return result


def naive_flat(header: dict) -> dict[str, int]:
    """Flatten a module header to pypff's dotted keys (``quabo_0.pkt_num``); ph256 stays flat."""
    flat = {}
    for key, value in header.items():
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                flat[f"{key}.{sub_key}"] = sub_value
        else:
            flat[key] = value
    return flat


def naive_unix_t_ns(flat: dict[str, int], product_kind: str) -> tuple[int, int]:
    """One frame's ``(unix time in ns, quality flags)`` by the PFF-FORMAT.md rule.

    ``product_kind`` is ``"module"``/``"quabo"`` or a product name. Module
    frames use the first quabo with ``tv_sec != 0`` (quabo_0 if none did).
    A desynchronised frame keeps the host second (and is flagged DESYNC).
    """
    kind = NAIVE_PRODUCTS[product_kind][2] if product_kind in NAIVE_PRODUCTS else product_kind
    flags = OK
    if kind == "module":
        present = [q for q in range(4) if flat[f"quabo_{q}.tv_sec"] != 0]
        if len(present) < 4:
            flags |= QUABO_MISSING
        q = present[0] if present else 0
        packet = {f: flat[f"quabo_{q}.{f}"] for f in ("pkt_tai", "pkt_nsec", "tv_sec", "tv_usec")}
    else:
        packet = flat
    tai, nsec = packet["pkt_tai"], packet["pkt_nsec"]
    tv_sec, tv_usec = packet["tv_sec"], packet["tv_usec"]
    if tai == 0:
        flags |= NO_WR
        host_ns = tv_sec * NS_PER_S + tv_usec * 1000
        # the host's own second first, so an exact 0.5 s tie keeps it
        second = min(
            (tv_sec, tv_sec - 1, tv_sec + 1), key=lambda s: abs(s * NS_PER_S + nsec - host_ns)
        )
    else:
        d = (tv_sec - tai + TAI_MINUS_UTC) % 1024
        if d == 0:
            second = tv_sec
        elif d == 1:
            second = tv_sec - 1
        elif d == 1023:
            second = tv_sec + 1
        else:
            flags |= DESYNC
            second = tv_sec
    return second * NS_PER_S + nsec, flags


def naive_hk(path: str | Path) -> list[tuple[str, dict]]:
    """``(device, fields)`` of every complete hk.pff text block; a cut-off tail is dropped."""
    data = Path(path).read_bytes()
    blocks = data.split(b"\n\n")
    complete = blocks[:-1]  # the last piece is either empty or a block cut short
    records = []
    for block in complete:
        for device, fields in json.loads(block).items():
            records.append((device, fields))
    return records


def naive_host_t_ns(flat: dict[str, int], product_kind: str) -> tuple[int, bool]:
    """``(host clock ns, packet loss)`` of one frame, the high-energy pipeline's way.

    Host time: ``tv_sec * 1e9 + tv_usec * 1e3`` of the earliest quabo that sent
    (``tv_sec != 0``; 0 if none did); a single-quabo header uses its own.
    Packet loss: any quabo's ``pkt_num == 0``.
    """
    kind = NAIVE_PRODUCTS[product_kind][2] if product_kind in NAIVE_PRODUCTS else product_kind
    if kind != "module":
        return flat["tv_sec"] * NS_PER_S + flat["tv_usec"] * 1000, flat["pkt_num"] == 0
    times = [
        flat[f"quabo_{q}.tv_sec"] * NS_PER_S + flat[f"quabo_{q}.tv_usec"] * 1000
        for q in range(4)
        if flat[f"quabo_{q}.tv_sec"] != 0
    ]
    lost = any(flat[f"quabo_{q}.pkt_num"] == 0 for q in range(4))
    return (min(times) if times else 0), lost
