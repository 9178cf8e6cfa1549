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

Layout: :mod:`~pfflake.simulate.truth` (events, streams, runs),
:mod:`~pfflake.simulate.frames` (header and image synthesis),
:mod:`~pfflake.simulate.write` (streams and runs on disk),
:mod:`~pfflake.simulate.furniture` (hk.pff, configs, sentinels). Import every
name from here.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

# Names this module showed before it became a package (tests and docs import them from
# here, e.g. the QUALITY_* flags and fixed_layout): the same objects.
from ..paths import HK_FILE_NAME, format_pff_name, format_run_name
from ..products import DataProduct, get_product
from ..timestamps import NS_PER_S, QUALITY_DESYNC, QUALITY_NO_WR, QUALITY_OK, QUALITY_QUABO_MISSING
from ..writer import PFFWriter, fixed_layout, write_hk
from .truth import DEFAULT_START, SIM_SECRETS, BrightEvent, SimulatedRun, SimulatedStream
from .write import make_big_stream, simulate_run, write_stream

__all__ = [
    "DEFAULT_START",
    "HK_FILE_NAME",
    "NS_PER_S",
    "QUALITY_DESYNC",
    "QUALITY_NO_WR",
    "QUALITY_OK",
    "QUALITY_QUABO_MISSING",
    "SIM_SECRETS",
    "BrightEvent",
    "DataProduct",
    "PFFWriter",
    "SimulatedRun",
    "SimulatedStream",
    "fixed_layout",
    "format_pff_name",
    "format_run_name",
    "get_product",
    "main",
    "make_big_stream",
    "simulate_run",
    "write_hk",
    "write_stream",
]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pfflake.simulate OUT_DIR [--product P] [--size-gb G]``: a benchmark stream."""
    parser = argparse.ArgumentParser(prog="python -m pfflake.simulate", description=main.__doc__)
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
