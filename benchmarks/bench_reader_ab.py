"""This checkout's reader against the reader of another git revision, paired in one process.

Run:  uv run --group bench python benchmarks/bench_reader_ab.py --against 5ba272d [--runs 7]
      [--gb 1.0 --ph256-gb 0.25 --dir /tmp/pfflake-bench]

A shared machine's load moves both readers alike when their runs alternate in
one process, so the median of the per-run ratios (other revision / this
checkout) is a steadier figure than two benchmark runs at different times.
Wall and CPU time (``process_time``, which counts both decode threads) are
printed: when the host is oversubscribed, wall time is 2-3x CPU time and the
CPU ratio is the steadier one.
The other revision's ``pfflake`` package is exported with ``git archive`` into
a temporary directory and imported under another name. Files: the public
example run (``_pypff_sdist.py``), plus simulated GB-scale streams when
``--gb`` is given (made once by ``bench_reader.make_stream``).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_revision(rev: str, into: Path):
    """``PFFSequence`` of ``pfflake`` as of git revision ``rev``."""
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "pfflake"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    name = "pfflake_" + rev.replace("/", "_").replace("-", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(
        name, into / "pfflake" / "__init__.py", submodule_search_locations=[str(into / "pfflake")]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.PFFSequence


def tasks():
    def meta(cls, path):
        with cls([path]) as seq:
            seq.get_metadata_arrays([*list(seq.metadata_offsets), "unix_t_ns"])

    def stamps(cls, path):
        with cls([path]) as seq:
            seq.timestamps()

    def opened(cls, path):
        with cls([path]):
            pass

    def batches(cls, path):
        with cls([path]) as seq:
            for b in seq.iter_batches(4096):
                b.sum(dtype="int64")

    return [("open", opened), ("get_metadata_arrays(all + unix_t_ns)", meta),
            ("timestamps()", stamps), ("iter_batches(4096) pixel sum", batches)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--against", required=True, help="git revision to compare with")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--gb", type=float, default=0.0, help="also a simulated img16 stream")
    ap.add_argument("--ph256-gb", type=float, default=0.0)
    ap.add_argument(
        "--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "pfflake-bench"
    )
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from _pypff_sdist import example_run

    from pfflake import PFFSequence as ours

    files = sorted(p for p in example_run().glob("*.pff") if p.name != "hk.pff")
    if args.gb or args.ph256_gb:
        from bench_reader import make_stream

        from pfflake.paths import format_pff_name

        args.dir.mkdir(parents=True, exist_ok=True)
        start = datetime(2025, 6, 1, 4, 0, 0, tzinfo=UTC)
        for product, module, gb in (("img16", 1, args.gb), ("ph256", 254, args.ph256_gb)):
            if gb:
                name = format_pff_name(start, product, module, 0)
                files.append(make_stream(args.dir / name, product, int(gb * 1e9)))
    with tempfile.TemporaryDirectory() as tmp:
        theirs = load_revision(args.against, Path(tmp))
        print(f"this checkout vs {args.against}; {args.runs} alternating runs; "
              f"load {os.getloadavg()[0]:.2f} (1-min)")
        for path in files:
            print(f"\n{path.name} ({path.stat().st_size / 1e6:,.1f} MB)")
            for label, fn in tasks():
                # wall and CPU (process_time: both decode threads) per run; the order
                # alternates within each pair, so neither side always runs second
                wall: dict[bool, list[float]] = {False: [], True: []}
                cpu: dict[bool, list[float]] = {False: [], True: []}
                for r in range(args.runs):
                    for here in ((False, True) if r % 2 == 0 else (True, False)):
                        gc.collect()
                        t, c = time.perf_counter(), time.process_time()
                        fn(ours if here else theirs, path)
                        wall[here].append(time.perf_counter() - t)
                        cpu[here].append(time.process_time() - c)

                def ratio(xs):
                    return statistics.median(
                        x / y for x, y in zip(xs[False], xs[True], strict=True)
                    )

                print(f"  {label:38s} {args.against} {statistics.median(wall[False]) * 1e3:9.2f} ms"
                      f"  here {statistics.median(wall[True]) * 1e3:9.2f} ms  {ratio(wall):5.2f}x"
                      f"  (CPU {statistics.median(cpu[False]) * 1e3:7.2f} /"
                      f" {statistics.median(cpu[True]) * 1e3:7.2f} ms {ratio(cpu):5.2f}x)")
    print(f"\nload after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
