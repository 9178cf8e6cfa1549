"""Writing simulated streams and runs to disk, block by block (bounded memory)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from ..paths import HK_FILE_NAME, format_pff_name, format_run_name
from ..products import get_product
from ..timestamps import NS_PER_S
from ..writer import PFFWriter, fixed_layout, write_hk
from .frames import StreamSynth, to_ns
from .furniture import hk_records, write_configs
from .truth import DEFAULT_START, BrightEvent, SimulatedRun, SimulatedStream


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
    synth = StreamSynth(
        product,
        module,
        n_frames=n_frames,
        t0_ns=to_ns(start) + first_frame_offset_ns,
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
        run.hk_records = hk_records(start, duration_s, modules, seed)
        run.hk_path = write_hk(run_dir / HK_FILE_NAME, run.hk_records)
    if configs:
        end = start + timedelta(seconds=duration_s + 1)
        run.config_paths = write_configs(
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
