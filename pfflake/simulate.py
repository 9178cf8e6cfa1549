"""Simulated PANOSETI observations whose truth is known, for tests and benchmarks.

Every frame starts from a true time on an int64 nanosecond grid; the header
fields are derived from it the way the hardware does:

* White Rabbit: ``pkt_tai = (true_s + 37) % 1024`` (low 10 bits of TAI
  seconds; 0 without WR), ``pkt_nsec = true_ns % 1e9``;
* DAQ host: ``tv_sec``/``tv_usec`` = true time + a random arrival latency
  (default -1..3 ms: network delay plus host clock error), so the
  ``d = 1`` and ``d = 1023`` second-boundary cases of the clock rule occur
  naturally; desynchronised frames get a host clock off by 3..9 s;
* each quabo has its own ``pkt_num`` counter (16-bit) and a few ns of
  ``pkt_nsec`` jitter; a missing quabo has all five fields 0.

Images are sky noise at product-typical levels (a reused bank of noise
frames, so GB-scale streams generate at disk speed) plus optional Gaussian
"bright events", coincident across modules when they share a frame index
(all streams share one time grid).

:class:`SimulatedStream` carries what a correct reader must return
(``expected_unix_t_ns``, ``expected_flags``); :class:`SimulatedRun` adds the
run directory with configs (including a credential, to test redaction), hk.pff
and sentinels. Run ``python -m pfflake.simulate OUT_DIR --size-gb 1`` to make a
benchmark stream.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from .paths import HK_FILE_NAME, format_pff_name, format_run_name
from .products import DataProduct, get_product

# The flag values are the reader's contract; the expected flags themselves are
# computed here independently of pfflake.timestamps (this module is test truth).
from .timestamps import (
    NS_PER_S,
    QUALITY_DESYNC,
    QUALITY_NO_WR,
    QUALITY_OK,
    QUALITY_QUABO_MISSING,
)
from .writer import PFFWriter, fixed_layout, write_hk

DEFAULT_START = datetime(2024, 7, 1, 5, 0, 0, tzinfo=UTC)
#: Credentials written into the simulated configs; redacted output must not contain them.
SIM_SECRETS = ("s3cr3t-sim", "wr-s3cr3t-sim")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOISE_BANK_FRAMES = 1024
_DEFAULT_AMPLITUDE = {"img16": 2000.0, "img8": 150.0, "ph1024": 1500.0, "ph256": 1500.0}


@dataclass(frozen=True)
class BrightEvent:
    """A Gaussian blob added to one frame index of the selected streams.

    ``modules``/``products`` ``None`` mean all (so one event is coincident
    across modules at the same true time). ``amplitude`` is the peak in raw
    pixel units above the sky (``None``: a product default); ``center`` is
    ``(row, col)`` in pixels (``None``: a position drawn from the frame index).
    """

    frame: int
    modules: tuple[int, ...] | None = None
    products: tuple[str, ...] | None = None
    amplitude: float | None = None
    sigma_px: float = 1.5
    center: tuple[float, float] | None = None

    def applies_to(self, product: str, module: int) -> bool:
        return (self.modules is None or module in self.modules) and (
            self.products is None or product in self.products
        )


@dataclass
class SimulatedStream:
    """One (data product, module) stream and what a correct reader must make of it.

    ``true_unix_t_ns``: the WR time (int64 ns) of the packet the timestamp
    rule uses (module frames: the first quabo present). ``expected_unix_t_ns``
    equals it except on desynchronised frames, where the rule keeps the host
    second, and on frames with no quabo at all (0). ``expected_flags`` are the
    quality bits (``QUALITY_*``). A truncated tail frame is not counted.
    """

    data_product: str
    module: int
    files: list[Path]
    true_unix_t_ns: np.ndarray
    expected_unix_t_ns: np.ndarray
    expected_flags: np.ndarray
    event_frames: np.ndarray
    truncated_tail_bytes: int = 0
    fixed_width: bool = True

    @property
    def product(self) -> DataProduct:
        return get_product(self.data_product)

    @property
    def stream(self) -> str:
        """pypff's product key, e.g. ``dp_img16.bpp_2.module_1``."""
        bpp = self.product.bytes_per_pixel
        return f"dp_{self.data_product}.bpp_{bpp}.module_{self.module}"

    @property
    def n_frames(self) -> int:
        return len(self.true_unix_t_ns)

    @property
    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


@dataclass
class SimulatedRun:
    """A simulated ``.pffd`` run directory and its truth."""

    path: Path
    start: datetime
    streams: dict[str, SimulatedStream]
    hk_path: Path | None = None
    hk_records: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    config_paths: dict[str, Path] = field(default_factory=dict)
    secrets: tuple[str, ...] = SIM_SECRETS

    def stream(self, data_product: str, module: int) -> SimulatedStream:
        product = get_product(data_product)
        key = f"dp_{product.name}.bpp_{product.bytes_per_pixel}.module_{module}"
        return self.streams[key]

    @property
    def files(self) -> dict[str, list[Path]]:
        return {key: s.files for key, s in self.streams.items()}


# ---------------------------------------------------------------------------- frame synthesis


def _to_ns(moment: datetime) -> int:
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


class _StreamSynth:
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


# ---------------------------------------------------------------------------- streams and runs


def write_stream(
    out_dir: str | Path,
    data_product: str,
    module: int,
    n_frames: int,
    *,
    start: datetime = DEFAULT_START,
    frame_rate_hz: float = 1000.0,
    first_frame_offset_ns: int = 250_000_017,
    frames_per_file: int | None = None,
    desync_frames: Sequence[int] = (),
    missing_quabo_frames: Sequence[int] | Mapping[int, Sequence[int]] = (),
    no_wr: bool = False,
    truncate_tail_bytes: int = 0,
    bright_events: Sequence[BrightEvent | int] = (),
    latency_us: tuple[int, int] = (-1000, 3000),
    fixed_width: bool = True,
    name_separator: str = ":",
    seed: int = 0,
    chunk_frames: int = 2048,
) -> SimulatedStream:
    """Write one stream (seqno 0, 1, ... of ``frames_per_file`` frames; ``None``: one file).

    Memory is bounded by ``chunk_frames`` whatever ``n_frames``: frames are
    synthesised and written block by block. The first frame's true time is
    ``start + first_frame_offset_ns``; frames follow every
    ``round(1e9 / frame_rate_hz)`` ns. ``missing_quabo_frames``: frame indices
    (one random quabo each) or ``{frame: [quabos]}``. ``truncate_tail_bytes``
    appends that many bytes of one more frame to the last file. ``latency_us``
    bounds the random host-minus-WR clock difference (us, both ends included).

    Sky noise comes from a bank of 1024 noise frames per stream, reused with
    a shifted order beyond that: fine for I/O and timing, not for noise statistics.
    """
    product = get_product(data_product)
    out_dir = Path(out_dir)
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    period_ns = round(NS_PER_S / frame_rate_hz)
    if period_ns < 1:
        raise ValueError(f"frame_rate_hz {frame_rate_hz} gives a frame period below 1 ns")
    frames_per_file = frames_per_file or n_frames
    out_dir.mkdir(parents=True, exist_ok=True)
    events = [e if isinstance(e, BrightEvent) else BrightEvent(int(e)) for e in bright_events]
    synth = _StreamSynth(
        product,
        module,
        n_frames=n_frames,
        t0_ns=_to_ns(start) + first_frame_offset_ns,
        period_ns=period_ns,
        desync_frames=desync_frames,
        missing_quabo_frames=missing_quabo_frames,
        no_wr=no_wr,
        bright_events=events,
        latency_us=latency_us,
        seed=seed,
    )
    files: list[Path] = []
    truth: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for seqno, first in enumerate(range(0, n_frames, frames_per_file)):
        last = min(first + frames_per_file, n_frames)
        name = format_pff_name(start, product.name, module, seqno, separator=name_separator)
        with PFFWriter(out_dir / name, product.name, fixed_width=fixed_width) as writer:
            for lo in range(first, last, chunk_frames):
                columns, images, *block_truth = synth.block(lo, min(lo + chunk_frames, last))
                writer.write_frames(columns, images)
                truth.append(tuple(block_truth))
            if truncate_tail_bytes and last == n_frames:
                columns, images, *_ = synth.block(n_frames, n_frames + 1)
                header = {k: int(v[0]) for k, v in columns.items()}
                writer.write_partial_frame(header, images[0], truncate_tail_bytes)
        files.append(writer.path)
    event_frames = sorted(f for f in synth.events if f < n_frames)
    return SimulatedStream(
        product.name,
        module,
        files,
        np.concatenate([t[0] for t in truth]),
        np.concatenate([t[1] for t in truth]),
        np.concatenate([t[2] for t in truth]),
        np.asarray(event_frames, dtype=np.int64),
        truncate_tail_bytes,
        fixed_width,
    )


def simulate_run(
    out_dir: str | Path,
    *,
    products: Sequence[str] = ("img16",),
    modules: Sequence[int] = (1,),
    n_frames: int = 1000,
    frame_rate_hz: float = 1000.0,
    start: datetime = DEFAULT_START,
    frames_per_file: int | None = None,
    desync_frames: Sequence[int] = (),
    missing_quabo_frames: Sequence[int] | Mapping[int, Sequence[int]] = (),
    no_wr: bool = False,
    truncate_tail_bytes: int = 0,
    bright_events: Sequence[BrightEvent | int] = (),
    hk: bool = True,
    configs: bool = True,
    seed: int = 0,
    observatory: str = "Lick",
    run_type: str = "sci-obs",
    fixed_width: bool = True,
    name_separator: str = ":",
) -> SimulatedRun:
    """Create ``out_dir/obs_<obs>.start_<time>Z.runtype_<type>.pffd`` and return its truth.

    One stream per (product, module), each ``n_frames`` frames on the same
    true time grid, split into seqno files of ``frames_per_file`` frames
    (``None``: three files). Desync/missing-quabo/event settings apply to every
    stream (missing quabos to module products only). ``hk`` writes hk.pff at
    1 Hz; ``configs`` writes the JSON configs (with a WPS URL credential and a
    ``password`` key) and the run sentinels.
    """
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    run_dir = Path(out_dir) / format_run_name(observatory, start, run_type)
    run_dir.mkdir(parents=True, exist_ok=False)
    frames_per_file = frames_per_file or max(1, -(-n_frames // 3))
    streams = {}
    for name in products:
        product = get_product(name)
        for module in modules:
            stream = write_stream(
                run_dir,
                product.name,
                module,
                n_frames,
                start=start,
                frame_rate_hz=frame_rate_hz,
                frames_per_file=frames_per_file,
                desync_frames=desync_frames,
                missing_quabo_frames=missing_quabo_frames
                if product.header_kind == "module"
                else (),
                no_wr=no_wr,
                truncate_tail_bytes=truncate_tail_bytes,
                bright_events=bright_events,
                fixed_width=fixed_width,
                name_separator=name_separator,
                seed=seed,
            )
            streams[stream.stream] = stream
    run = SimulatedRun(run_dir, start, streams)
    duration_s = n_frames / frame_rate_hz
    if hk:
        run.hk_records = _hk_records(start, duration_s, modules, seed)
        run.hk_path = write_hk(run_dir / HK_FILE_NAME, run.hk_records)
    if configs:
        end = start + timedelta(seconds=duration_s + 1)
        run.config_paths = _write_configs(
            run_dir,
            observatory,
            run_type,
            products,
            modules,
            frame_rate_hz,
            end,
            max(p.stat().st_size for s in streams.values() for p in s.files),
        )
    return run


def make_big_stream(
    out_dir: str | Path,
    data_product: str = "img16",
    size_gb: float = 1.0,
    *,
    module: int = 1,
    seed: int = 0,
) -> SimulatedStream:
    """One benchmark file of about ``size_gb`` GB (1e9 bytes) of whole frames, seqno 0."""
    frame_bytes = fixed_layout(data_product).frame_bytes
    n_frames = max(1, int(size_gb * 1e9) // frame_bytes)
    return write_stream(out_dir, data_product, module, n_frames, seed=seed, chunk_frames=2048)


# ---------------------------------------------------------------------------- run furniture


def _quabo_ips(module: int) -> list[str]:
    """A module's four quabo IP addresses: module id = (third octet * 256 + fourth) >> 2."""
    if not 0 <= module <= 255:
        raise ValueError(f"module id must be 0..255, got {module}")
    base = module * 4
    return [f"192.168.{(base + q) >> 8}.{(base + q) & 255}" for q in range(4)]


def _hk_records(start: datetime, duration_s: float, modules: Sequence[int], seed: int):
    rng = np.random.default_rng([seed, 7])
    records: list[tuple[str, dict[str, str]]] = []
    t0 = start.timestamp()
    for k in range(int(np.ceil(duration_s)) + 1):
        utc = t0 + k + 0.1
        records.append(("WPS", {"Computer_UTC": f"{utc:.6f}", "POWER": "ON"}))
        for module in modules:
            for q in range(4):
                board = module * 4 + q
                fields = {"Computer_UTC": f"{utc + 0.01 * q:.7f}", "BOARDLOC": str(board)}
                for i in range(4):
                    fields[f"HVMON{i}"] = str(round(-55.0 + rng.normal(0, 0.2), 5))
                fields["TEMP1"] = str(round(40.0 + 0.01 * k + rng.normal(0, 0.1), 2))
                fields["TEMP2"] = str(64.0 + rng.normal(0, 0.2))
                fields["UID"] = f"0x{rng.integers(0, 2**62):016x}"
                fields["SHUTTER_STATUS"] = "0"
                records.append((f"QUABO_{board}", fields))
        ports = {f"Port{p:2d}_LINK": "1" if p in (2, 13) else "0" for p in range(1, 19)}
        records.append(("WRSWITCH", {"Computer_UTC": f"{utc:.7f}", **ports, "SOFTPLL": "1"}))
    return records


def _write_configs(
    run_dir: Path,
    observatory: str,
    run_type: str,
    products: Sequence[str],
    modules: Sequence[int],
    frame_rate_hz: float,
    end: datetime,
    max_file_bytes: int,
) -> dict[str, Path]:
    names = {get_product(p).name for p in products}
    obs = {
        "name": observatory,
        "comment": "simulated by pfflake.simulate",
        "wps": {"url": f"http://admin:{SIM_SECRETS[0]}@10.0.0.5", "quabo_socket": 1},
        "wr_ip_addr": "10.0.1.36",
        "wr_switch": {"user": "root", "password": SIM_SECRETS[1]},
        "gps_port": "/dev/ttyUSB0",
        "domes": [
            {
                "obslat": 37.3414,
                "obslon": -121.6429,
                "obsalt": 1283,
                "name": "north dome",
                "modules": [
                    {
                        "mobo_serialno": f"M{m}",
                        "quabo_version": "qfp",
                        "ip_addr": _quabo_ips(m)[0],
                        "wps": "wps",
                        "azimuth": 77,
                        "elevation": 77,
                        "position_angle": 77,
                    }
                    for m in modules
                ],
            }
        ],
    }
    data: dict = {"run_type": run_type, "detector_overvoltage": 3, "gain": 60}
    if names & {"img16", "img8"}:
        data["image"] = {
            "integration_time_usec": round(1e6 / frame_rate_hz),
            "pe_threshold": 2.0,
            "quabo_sample_size": 16 if "img16" in names else 8,
        }
    if names & {"ph256", "ph1024"}:
        data["pulse_height"] = {
            "pe_threshold": 7.5,
            "any_trigger": {"group_ph_frames": 1 if "ph1024" in names else 0},
            "two_pixel_trigger": 0,
            "three_pixel_trigger": 0,
        }
    data["max_file_size_mb"] = max(1, -(-max_file_bytes // 2**20))
    daq = {
        "head_node_data_dir": "/data/panoseti_data",
        "head_node_ip_addr": "192.168.1.100",
        "daq_nodes": [
            {
                "username": "panoseti",
                "data_dir": "/data/panoseti_data",
                "ip_addr": "192.168.1.100",
                "module_ids": ",".join(map(str, modules)),
                "bindhost": "enp3s0",
            }
        ],
    }
    sw = {
        "commit": "0000000000000000000000000000000000000000",
        "author": "pfflake.simulate",
        "branch": "master",
        "commit_date": "2024-01-01 00:00:00",
    }
    uids = {
        "domes": [
            {
                "modules": [
                    {
                        "ip_addr": _quabo_ips(m)[0],
                        "quabos": [{"uid": f"{m:04x}{q:011x}"} for q in range(4)],
                    }
                    for m in modules
                ]
            }
        ]
    }
    documents = {
        "obs_config": obs,
        "data_config": data,
        "daq_config": daq,
        "sw_info": sw,
        "quabo_uids": uids,
    }
    for module in modules:
        for q, ip in enumerate(_quabo_ips(module)):
            quabo = {f"CHANMASK_{i}": "0xffffffff" for i in range(8)}
            quabo |= {"GOEMASK": "0x3", "GAIN0": "60,60,60,60", "QUABO": str(q)}
            documents[f"quabo_config_{ip}"] = quabo
    paths = {}
    for stem, document in documents.items():
        paths[stem] = run_dir / f"{stem}.json"
        paths[stem].write_text(json.dumps(document, indent=4) + "\n")
    stamp = end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for sentinel in ("collect_complete", "run_complete", "recording_ended"):
        paths[sentinel] = run_dir / sentinel
        paths[sentinel].write_text(stamp + "\n")
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pfflake.simulate OUT_DIR [--product P] [--size-gb G]``: a benchmark stream."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--product", default="img16")
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--module", type=int, default=1)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    stream = make_big_stream(args.out_dir, args.product, args.size_gb, module=args.module)
    elapsed = time.perf_counter() - began
    print(
        f"{stream.files[0]}: {stream.n_frames} frames, {stream.nbytes / 1e6:.0f} MB "
        f"in {elapsed:.2f} s ({stream.nbytes / 1e6 / elapsed:.0f} MB/s)"
    )


if __name__ == "__main__":
    main()
