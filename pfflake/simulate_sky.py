"""Simulated nights of several telescopes seeing air showers, with clocks that disagree.

Where :mod:`pfflake.simulate` writes frames on one regular time grid (for I/O
tests), this module writes what the high-energy pipeline analyses: triggered
pulse-height frames at random times, and the truth needed to check clock
offsets, coincidences and cuts.

Per module, all in int64 ns:

* **Triggers**: Poisson background at ``trigger_rate_hz`` (accidentals), plus
  air-shower events: a Poisson stream at ``shower_rate_hz``, each seen by each
  module with probability ``shower_p`` at the shower's true time plus a
  Gaussian ``shower_jitter_ns`` (light travel between domes), and optional
  rate spikes (extra triggers at a higher rate for a while).
* **White Rabbit** time: ``pkt_tai``/``pkt_nsec`` from the true trigger time
  (a few ns of packet jitter); a module in ``wr_out_of_sync`` has its
  ``pkt_tai`` off by ``wr_desync_s`` seconds (the clock rule flags it).
* **Host clock**: ``tv_sec``/``tv_usec`` = true time + the module's
  :class:`ModuleClock` offset (``offset_ns + drift_ppb * elapsed_s``) + a
  uniform arrival latency. ``ph1024`` frames have four quabo packets, each
  with its own latency; the frame's host time is the earliest.
* **Packet loss**: a fraction of frames has ``pkt_num == 0`` (one quabo's).
* **Housekeeping**: ``MOUNT_<module>`` records every ``hk_cadence_s`` with
  ``tracking`` ``"True"``/``"False"`` (``not_tracking`` intervals) and ``side``.

:class:`SkyTruth` keeps everything: per-module frame arrays in file order, the
showers and the modules that saw each, the clock models and the intervals.
``SkyTruth.expected_offset(m, ref, t)`` is the host-clock offset a correct
estimator must find (``t_m - t_ref`` for the same event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from .paths import HK_FILE_NAME, format_pff_name, format_run_name
from .products import get_product
from .simulate import DEFAULT_START
from .writer import PFFWriter, write_hk

__all__ = ["ModuleClock", "SkyTruth", "simulate_sky"]

NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BANK = 256
_WRITE_FRAMES = 65_536  # frames whose images are in memory at once


@dataclass(frozen=True)
class ModuleClock:
    """A module's DAQ host clock relative to true time, and its packet arrival latency.

    Host time of a packet = true time + ``offset_ns`` + ``drift_ppb`` ns per
    second elapsed since the run start + a latency uniform in ``latency_ns``
    (both ends included).
    """

    offset_ns: int = 0
    drift_ppb: int = 0
    latency_ns: tuple[int, int] = (200_000, 1_200_000)

    def host_offset(self, t_ns: np.ndarray | int, t0_ns: int) -> np.ndarray:
        """Clock offset (no latency) at true times ``t_ns``, int64 ns."""
        elapsed = np.asarray(t_ns, dtype=np.int64) - t0_ns
        return self.offset_ns + elapsed * self.drift_ppb // NS_PER_S

    @property
    def mean_latency_ns(self) -> int:
        return (self.latency_ns[0] + self.latency_ns[1]) // 2


@dataclass
class SkyTruth:
    """What :func:`simulate_sky` wrote, and what a correct analysis must find.

    ``frames[module]``: arrays in file order (frame index = position):
    ``true_ns``, ``wr_ns`` (what the WR rule returns), ``host_ns`` (earliest
    quabo's host time), ``shower`` (shower index or -1), ``spike`` (bool: an
    extra trigger of a rate spike), ``packet_loss`` (bool). ``showers_ns``:
    true shower times; ``seen[i, j]``: shower ``i`` seen by ``modules[j]``.
    Intervals are ``(module, start_ns, stop_ns)`` in true time.
    """

    path: Path
    data_product: str
    modules: tuple[int, ...]
    t0_ns: int
    duration_ns: int
    clocks: dict[int, ModuleClock]
    frames: dict[int, dict[str, np.ndarray]]
    showers_ns: np.ndarray
    seen: np.ndarray
    spikes: list[tuple[int, int, int]] = field(default_factory=list)
    not_tracking: list[tuple[int, int, int]] = field(default_factory=list)
    hk_cadence_ns: int = 9 * NS_PER_S
    trigger_rate_hz: float = 0.0

    @property
    def run(self) -> str:
        return self.path.name

    def expected_offset(self, module: int, reference: int, t_ns: np.ndarray | int) -> np.ndarray:
        """Typical host-clock ``t_module - t_reference`` of one event at true time ``t_ns``."""
        cm, cr = self.clocks[module], self.clocks[reference]
        return (
            cm.host_offset(t_ns, self.t0_ns) - cr.host_offset(t_ns, self.t0_ns)
            + cm.mean_latency_ns - cr.mean_latency_ns
        )

    def multiplicity(self) -> np.ndarray:
        """Number of modules that saw each shower."""
        return self.seen.sum(axis=1)


def simulate_sky(
    out_dir: str | Path,
    *,
    modules: Sequence[int] = (1, 2, 3, 4),
    duration_s: int = 600,
    data_product: str = "ph256",
    start: datetime = DEFAULT_START,
    trigger_rate_hz: float = 5.0,
    shower_rate_hz: float = 2.0,
    shower_p: float = 0.7,
    shower_jitter_ns: int = 100,
    clocks: dict[int, ModuleClock] | None = None,
    wr_out_of_sync: Sequence[int] = (),
    wr_desync_s: int = 5,
    packet_loss_fraction: float = 0.0,
    spikes: Sequence[tuple[int, float, float, float]] = (),
    not_tracking: Sequence[tuple[int, float, float]] = (),
    hk_cadence_s: int = 9,
    frames_per_file: int | None = None,
    observatory: str = "Lick",
    seed: int = 0,
) -> SkyTruth:
    """Write ``out_dir/obs_<obs>.start_<time>Z.runtype_sci-obs.pffd`` and return its truth.

    ``clocks`` default: module ``i`` (0-based position) gets ``offset_ns =
    (i * 3 - 4) ms + i * 0.37 ms``, ``drift_ppb = (i - 1) * 1500`` (1.5 us/s).
    ``spikes``: ``(module, start_s, duration_s, rate_hz)``; ``not_tracking``:
    ``(module, start_s, duration_s)``, both from the run start. Memory is about
    100 bytes per frame plus 64k frames' images.
    """
    product = get_product(data_product)
    if product.name not in ("ph256", "ph1024"):
        raise ValueError(f"simulate_sky writes pulse-height products (ph256, ph1024), "
                         f"not {product.name}")
    modules = tuple(int(m) for m in modules)
    if len(set(modules)) != len(modules) or not modules:
        raise ValueError(f"modules must be distinct, got {modules}")
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    t0 = (start - _EPOCH) // timedelta(microseconds=1) * 1000
    duration_ns = int(duration_s) * NS_PER_S
    rng = np.random.default_rng(seed)
    if clocks is None:
        clocks = {
            m: ModuleClock(offset_ns=(i * 3 - 4) * 1_000_000 + i * 370_000,
                           drift_ppb=(i - 1) * 1500)
            for i, m in enumerate(modules)
        }
    run_dir = Path(out_dir) / format_run_name(observatory, start, "sci-obs")
    run_dir.mkdir(parents=True, exist_ok=False)

    showers = t0 + np.sort(_poisson_times(rng, shower_rate_hz, duration_ns))
    seen = rng.random((len(showers), len(modules))) < shower_p
    truth = SkyTruth(run_dir, product.name, modules, t0, duration_ns, dict(clocks), {},
                     showers, seen, hk_cadence_ns=hk_cadence_s * NS_PER_S,
                     trigger_rate_hz=trigger_rate_hz)
    for j, m in enumerate(modules):
        clock = clocks.get(m, ModuleClock())
        truth.clocks[m] = clock
        sub = np.random.default_rng([seed, m])
        bg = t0 + _poisson_times(sub, trigger_rate_hz, duration_ns)
        sh_idx = np.flatnonzero(seen[:, j])
        sh = showers[sh_idx] + np.rint(sub.normal(0, shower_jitter_ns, len(sh_idx))).astype(
            np.int64)
        extra = []
        for sm, s0, sd, rate in spikes:
            if int(sm) == m:
                lo = t0 + round(s0 * NS_PER_S)
                d = round(sd * NS_PER_S)
                extra.append(lo + _poisson_times(sub, rate, d))
                truth.spikes.append((m, lo, lo + d))
        sp = np.concatenate(extra) if extra else np.empty(0, np.int64)
        true_ns = np.concatenate([bg, sh, sp])
        shower = np.concatenate([np.full(len(bg), -1), sh_idx, np.full(len(sp), -1)])
        spike = np.concatenate([np.zeros(len(bg) + len(sh), bool), np.ones(len(sp), bool)])
        order = np.argsort(true_ns, kind="stable")
        true_ns, shower, spike = true_ns[order], shower[order], spike[order]
        frames = _write_module(run_dir, product.name, m, start, t0, true_ns, shower, clock,
                               m in wr_out_of_sync, wr_desync_s, packet_loss_fraction,
                               frames_per_file, sub)
        frames.update(true_ns=true_ns, shower=shower.astype(np.int64), spike=spike)
        truth.frames[m] = frames
    for m, s0, sd in not_tracking:
        lo = t0 + round(s0 * NS_PER_S)
        truth.not_tracking.append((int(m), lo, lo + round(sd * NS_PER_S)))
    write_hk(run_dir / HK_FILE_NAME, _mount_records(truth))
    (run_dir / "run_complete").write_text(
        (start + timedelta(seconds=int(duration_s))).strftime("%Y-%m-%dT%H:%M:%S") + "\n")
    return truth


def _poisson_times(rng: np.random.Generator, rate_hz: float, duration_ns: int) -> np.ndarray:
    """Offsets in ``[0, duration_ns)`` of a Poisson process (int64 ns, unsorted)."""
    n = rng.poisson(rate_hz * duration_ns / NS_PER_S) if rate_hz > 0 else 0
    return rng.integers(0, max(duration_ns, 1), n, dtype=np.int64)


def _write_module(
    run_dir: Path, product: str, module: int, start: datetime, t0: int, true_ns: np.ndarray,
    shower: np.ndarray, clock: ModuleClock, desync: bool, desync_s: int, loss: float,
    frames_per_file: int | None, rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    n = len(true_ns)
    kind = get_product(product).header_kind
    n_q = 4 if kind == "module" else 1
    offset = clock.host_offset(true_ns, t0)
    columns: dict[str, np.ndarray] = {}
    host = np.full(n, np.iinfo(np.int64).max, np.int64)
    wr_ns = None
    lost = rng.random(n) < loss
    lost_q = rng.integers(0, n_q, n)
    quabo = rng.integers(0, 4, n)  # ph256: which quabo triggered
    for q in range(n_q):
        t_pkt = true_ns + rng.integers(0, 9, n)
        h = t_pkt + offset + rng.integers(clock.latency_ns[0], clock.latency_ns[1], n,
                                          endpoint=True)
        host = np.minimum(host, h // 1000 * 1000)  # the host clock has us resolution
        tai = (t_pkt // NS_PER_S + 37 + (desync_s if desync else 0)) % 1024
        if q == 0:
            wr_ns = t_pkt
        if kind == "module":
            counter = (rng.integers(1, 30000) + np.arange(n)) % 65536
        else:
            onehot = quabo[:, None] == np.arange(4)
            counter = (np.cumsum(onehot, axis=0)[np.arange(n), quabo] + 1) % 65536
        pkt_num = np.where(lost & (lost_q == q), 0, counter)
        prefix = f"quabo_{q}." if kind == "module" else ""
        columns[prefix + "pkt_num"] = pkt_num
        columns[prefix + "pkt_tai"] = tai
        columns[prefix + "pkt_nsec"] = t_pkt % NS_PER_S
        columns[prefix + "tv_sec"] = h // NS_PER_S
        columns[prefix + "tv_usec"] = h % NS_PER_S // 1000
    if kind != "module":
        columns["quabo_num"] = quabo
    per_file = frames_per_file or max(n, 1)
    bank = _bank(product, rng)
    for seqno, lo in enumerate(range(0, max(n, 1), per_file)):
        hi = min(lo + per_file, n)
        name = format_pff_name(start, product, module, seqno)
        with PFFWriter(run_dir / name, product) as w:
            for a in range(lo, max(hi, lo + 1), _WRITE_FRAMES):
                b = min(a + _WRITE_FRAMES, hi)
                w.write_frames({k: v[a:b] for k, v in columns.items()},
                               _images(product, bank, shower[a:b], rng))
    wr_rule = wr_ns.copy()
    if desync:  # the rule keeps the host second and flags the frame
        wr_rule = columns[("quabo_0." if kind == "module" else "") + "tv_sec"] * NS_PER_S + (
            wr_ns % NS_PER_S)
    prefixes = [f"quabo_{q}." for q in range(n_q)] if kind == "module" else [""]
    lost_any = np.logical_or.reduce([columns[p + "pkt_num"] == 0 for p in prefixes])
    return {"wr_ns": wr_rule, "host_ns": host, "packet_loss": lost_any}


def _bank(product: str, rng: np.random.Generator) -> np.ndarray:
    p = get_product(product)
    return np.rint(rng.normal(40, 6, (_BANK, *p.image_shape))).astype(p.dtype)


def _images(product: str, bank: np.ndarray, shower: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """Noise frames from ``bank``, with a bright 3x3 spot where a shower was seen."""
    h, w = get_product(product).image_shape
    images = bank[rng.integers(0, len(bank), len(shower))]
    hit = np.flatnonzero(shower >= 0)
    if len(hit):
        r0 = (shower[hit] * 7) % (h - 4)
        c0 = (shower[hit] * 3) % (w - 4)
        for dr in range(3):
            for dc in range(3):
                images[hit, r0 + dr, c0 + dc] += 800
    return images


def _mount_records(truth: SkyTruth) -> list[tuple[str, dict[str, str]]]:
    records = []
    step = truth.hk_cadence_ns
    for k in range(truth.duration_ns // step + 1):
        t = truth.t0_ns + k * step + 50_000_000
        for m in truth.modules:
            off = any(mm == m and lo <= t < hi for mm, lo, hi in truth.not_tracking)
            utc = f"{t // NS_PER_S}.{t % NS_PER_S:09d}"
            side = "WEST" if t < truth.t0_ns + truth.duration_ns // 2 else "EAST"
            records.append((f"MOUNT_{m}", {"Computer_UTC": utc,
                                           "tracking": "False" if off else "True",
                                           "side": side}))
    return records
