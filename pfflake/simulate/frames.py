"""Frame synthesis: header fields derived from a true time, sky-noise images, bright events.

The rules are the ones :mod:`pfflake.simulate`'s docstring lists; the expected
reader output (:meth:`StreamSynth.block`) is computed here from the true times,
independently of :mod:`pfflake.timestamps`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from ..products import DataProduct

# The flag values are the reader's contract; the expected flags themselves are
# computed here independently of pfflake.timestamps (this module is test truth).
from ..timestamps import (
    NS_PER_S,
    QUALITY_DESYNC,
    QUALITY_NO_WR,
    QUALITY_OK,
    QUALITY_QUABO_MISSING,
)
from .truth import BrightEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOISE_BANK_FRAMES = 1024
_DEFAULT_AMPLITUDE = {"img16": 2000.0, "img8": 150.0, "ph1024": 1500.0, "ph256": 1500.0}


def to_ns(moment: datetime) -> int:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _noise_bank(product: DataProduct, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` sky-noise frames: Poisson counts for images; baseline, noise and a trigger for ph."""
    h, w = product.image_shape
    if product.name.startswith("img"):
        sky = 40.0 if product.name == "img16" else 6.0
        flat = rng.uniform(0.7, 1.3, (h, w))
        counts = rng.poisson(sky * flat, (n, h, w))
        return np.minimum(counts, np.iinfo(product.dtype).max).astype(product.dtype)
    baseline = rng.normal(40.0, 5.0, (h, w))
    heights = baseline + rng.normal(0.0, 8.0, (n, h, w))
    trigger = rng.integers(0, h * w, n)
    heights.reshape(n, -1)[np.arange(n), trigger] += rng.uniform(200.0, 1500.0, n)
    return np.rint(heights).astype(product.dtype)


def _blob(product: DataProduct, event: BrightEvent, seed: int) -> np.ndarray:
    h, w = product.image_shape
    if event.center is None:
        where = np.random.default_rng([seed, event.frame]).uniform(2.0, [h - 3.0, w - 3.0])
        row, col = float(where[0]), float(where[1])
    else:
        row, col = event.center
    amplitude = event.amplitude if event.amplitude is not None else _DEFAULT_AMPLITUDE[product.name]
    rr, cc = np.mgrid[0:h, 0:w]
    return amplitude * np.exp(-((rr - row) ** 2 + (cc - col) ** 2) / (2 * event.sigma_px**2))


class StreamSynth:
    """Synthesises consecutive blocks of one stream's frames (headers, images, truth)."""

    def __init__(
        self,
        product: DataProduct,
        module: int,
        *,
        n_frames: int,
        t0_ns: int,
        period_ns: int,
        desync_frames: Sequence[int],
        missing_quabo_frames: Sequence[int] | Mapping[int, Sequence[int]],
        no_wr: bool,
        bright_events: Sequence[BrightEvent],
        latency_us: tuple[int, int],
        seed: int,
    ) -> None:
        self.product, self.module = product, module
        self.t0_ns, self.period_ns, self.no_wr = t0_ns, period_ns, no_wr
        self.latency_ns = (latency_us[0] * 1000, latency_us[1] * 1000)
        self.rng = np.random.default_rng([seed, module, zlib.crc32(product.name.encode())])
        self.desync = np.unique(np.asarray(desync_frames, dtype=np.int64))
        self.missing = self._missing_table(missing_quabo_frames)
        self.pkt_num_base = self.rng.integers(0, 65536, 4)
        self.pkt_num_seen = np.zeros(4, np.int64)  # ph256: packets per quabo so far
        self.bank = _noise_bank(product, max(1, min(n_frames, _NOISE_BANK_FRAMES)), self.rng)
        self.events: dict[int, list[np.ndarray]] = {}
        for event in bright_events:
            if event.applies_to(product.name, module) and event.frame >= 0:
                self.events.setdefault(event.frame, []).append(_blob(product, event, seed))

    def _missing_table(self, spec: Sequence[int] | Mapping[int, Sequence[int]]) -> dict:
        if not spec:
            return {}
        if self.product.header_kind != "module":
            raise ValueError(
                f"missing quabos apply to module products only, not {self.product.name} "
                "(its frames are single quabo packets)"
            )
        if isinstance(spec, Mapping):
            return {int(f): sorted(set(map(int, qs))) for f, qs in spec.items()}
        return {int(f): [int(self.rng.integers(0, 4))] for f in spec}

    def block(
        self, start: int, stop: int
    ) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Frames ``start..stop-1``: (header columns, images, true ns, expected ns, flags)."""
        index = np.arange(start, stop, dtype=np.int64)
        n = len(index)
        t = self.t0_ns + index * self.period_ns
        offset = np.zeros(n, np.int64)
        desync = np.isin(index, self.desync)
        signs = self.rng.choice([-1, 1], int(desync.sum()))
        offset[desync] = signs * self.rng.integers(3, 10, int(desync.sum())) * NS_PER_S
        if self.product.header_kind == "module":
            columns, chosen = self._module_packets(index, t, offset)
        else:
            columns, chosen = self._single_packets(index, t, offset)
        true_ns, expected, flags = self._truth(chosen, desync)
        return columns, self._images(index), true_ns, expected, flags

    def _packet(self, t: np.ndarray, offset: np.ndarray) -> dict[str, np.ndarray]:
        n = len(t)
        t_packet = t + self.rng.integers(0, 9, n)
        host = t_packet + self.rng.integers(*self.latency_ns, n, endpoint=True) + offset
        tai = np.zeros(n, np.int64) if self.no_wr else (t_packet // NS_PER_S + 37) % 1024
        return {
            "pkt_tai": tai,
            "pkt_nsec": t_packet % NS_PER_S,
            "tv_sec": host // NS_PER_S,
            "tv_usec": host % NS_PER_S // 1000,
            "true_ns": t_packet,
        }

    def _module_packets(
        self, index: np.ndarray, t: np.ndarray, offset: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        n = len(index)
        present = np.ones((4, n), bool)
        for frame, quabos in self.missing.items():
            hit = np.searchsorted(index, frame)
            if hit < n and index[hit] == frame:
                present[quabos, hit] = False
        columns: dict[str, np.ndarray] = {}
        packets = []
        for q in range(4):
            packet = self._packet(t, offset)
            packet["pkt_num"] = (self.pkt_num_base[q] + index) % 65536
            for name in packet:
                packet[name] = np.where(present[q], packet[name], 0)
            packets.append(packet)
            for name in ("pkt_num", "pkt_tai", "pkt_nsec", "tv_sec", "tv_usec"):
                columns[f"quabo_{q}.{name}"] = packet[name]
        first = np.where(present.any(axis=0), present.argmax(axis=0), 0)
        rows = np.arange(n)
        chosen = {k: np.stack([p[k] for p in packets])[first, rows] for k in packets[0]}
        chosen["missing"] = ~present.all(axis=0)
        chosen["none"] = ~present.any(axis=0)
        chosen["true_ns"] = np.where(chosen["none"], t, chosen["true_ns"])
        return columns, chosen

    def _single_packets(
        self, index: np.ndarray, t: np.ndarray, offset: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        n = len(index)
        packet = self._packet(t, offset)
        quabo = self.rng.integers(0, 4, n)
        onehot = quabo[:, None] == np.arange(4)
        count = np.cumsum(onehot, axis=0)[np.arange(n), quabo] - 1 + self.pkt_num_seen[quabo]
        self.pkt_num_seen += onehot.sum(axis=0)
        packet["pkt_num"] = (self.pkt_num_base[quabo] + count) % 65536
        packet["quabo_num"] = quabo
        names = ("quabo_num", "pkt_num", "pkt_tai", "pkt_nsec", "tv_sec", "tv_usec")
        packet["missing"] = packet["none"] = np.zeros(n, bool)
        return {name: packet[name] for name in names}, packet

    def _truth(
        self, p: dict[str, np.ndarray], desync: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Expected reader output: WR time, except where the rule cannot know better."""
        has_wr = p["pkt_tai"] != 0
        expected = p["true_ns"].copy()
        host_second = p["tv_sec"] * NS_PER_S + p["pkt_nsec"]
        expected[desync & has_wr] = host_second[desync & has_wr]
        # no WR: the second nearest the (wrong) host clock
        blind = (desync & ~has_wr) | p["none"]
        diff = p["tv_usec"] * 1000 - p["pkt_nsec"]
        step = np.where(diff > NS_PER_S // 2, 1, np.where(diff < -(NS_PER_S // 2), -1, 0))
        expected[blind] = (host_second + step * NS_PER_S)[blind]
        flags = np.where(has_wr, QUALITY_OK, QUALITY_NO_WR).astype(np.uint8)
        flags[desync & has_wr] |= QUALITY_DESYNC
        flags[p["missing"]] |= QUALITY_QUABO_MISSING
        return p["true_ns"], expected, flags

    def _images(self, index: np.ndarray) -> np.ndarray:
        size = len(self.bank)
        images = self.bank[(index + 37 * (index // size)) % size]
        for row in np.flatnonzero(np.isin(index, list(self.events))):
            info = np.iinfo(self.product.dtype)
            total = images[row] + sum(self.events[int(index[row])])
            images[row] = np.clip(np.rint(total), info.min, info.max).astype(self.product.dtype)
        return images
