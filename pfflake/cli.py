"""The ``pfflake`` command line.

Errors are one clear line on stderr and a non-zero exit; ``--debug`` shows
the traceback.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Fast PANOSETI PFF I/O and a columnar data lake.",
)
_state = {"debug": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    _state["debug"] = debug


def _fmt_ns(ns: int | None) -> str:
    if ns is None:
        return "-"
    sec, rem = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rem:09d}Z"


@app.command()
def info(paths: list[Path] = typer.Argument(..., help="Run directories or PFF files.")) -> None:
    """Summarise runs or files: streams, frames, time span, damage, clock quality."""
    from .paths import parse_pff_name
    from .run import PanosetiRun
    from .sequence import sequence_info

    console = Console(width=None if sys.stdout.isatty() else 160)
    for path in paths:
        if path.is_dir():
            run = PanosetiRun(path, strict=False)
            rinfo = run.info()
            products, skipped = rinfo.products, rinfo.skipped_files
            title = f"run {path.name}"
            extra = f"configs: {', '.join(rinfo.configs) or '-'}; hk records: {rinfo.hk_records}"
            if rinfo.error:
                extra += f"\n[red]error: {rinfo.error}[/]"
            run.close()
        elif path.is_file():
            parse_pff_name(path)
            products, skipped, title, extra = [sequence_info([path])], {}, f"file {path}", ""
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
        table = Table(title=title)
        for col in (
            "stream",
            "files",
            "frames",
            "first frame (UTC)",
            "last frame (UTC)",
            "clock flags",
            "damage",
        ):
            table.add_column(col)
        for p in products:
            flags = ", ".join(f"{k}={v}" for k, v in p.quality_counts.items() if v) or "ok"
            damage = [
                f"{f.path.name}: tail cut {f.truncated_tail_bytes} B"
                for f in p.files
                if f.truncated_tail_bytes
            ]
            damage += [f"{f.path.name}: {len(f.damage)} damaged" for f in p.files if f.damage]
            damage += [f"error: {p.error}"] if p.error else []
            table.add_row(
                p.name.split("Z.", 1)[-1],
                str(len(p.files)),
                f"{p.frames:,}",
                _fmt_ns(p.first_unix_t_ns),
                _fmt_ns(p.last_unix_t_ns),
                flags,
                "; ".join(damage) or "none",
            )
        console.print(table)
        for name, why in skipped.items():
            console.print(f"[yellow]skipped {name}: {why}[/]")
        if extra:
            console.print(extra)


@app.command()
def ingest(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories (.pffd) to ingest."),
    lake: Path = typer.Option(..., "--lake", help="Lake directory (created if missing)."),
    workers: int = typer.Option(0, help="Worker processes (0: all cores)."),
    lenient: bool = typer.Option(False, help="Skip damaged frames instead of failing."),
    threshold: float = typer.Option(None, help="Pixel value counted by pixels_above."),
    progress: bool = typer.Option(None, help="Progress bar (default: on a terminal)."),
    scheduler: str = typer.Option(
        None, "--scheduler",
        help="Dask scheduler address (tcp://host:8786): run the work on that cluster "
        "(needs pfflake[distributed]; workers must see the same paths).",
    ),
) -> None:
    """Add runs to a lake: metadata to Parquet, pixels to Zarr v3, in one atomic commit."""
    from .lake import Lake

    for d in run_dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"run directory not found: {d}")
    client = None
    if scheduler:
        from .distributed import connect

        client = connect(scheduler)
    try:
        result = Lake(lake).ingest(
            run_dirs, workers=workers or None, strict=not lenient, threshold=threshold,
            progress=progress, client=client,
        )
    finally:
        if client is not None:
            client.close()
    print(result.summary())


@app.command()
def fsck(
    lake: Path = typer.Argument(..., help="Lake directory."),
    repair: bool = typer.Option(False, help="Remove uncommitted leftovers."),
) -> None:
    """Check committed files against the log and find leftovers of interrupted ingests."""
    from .lake import Lake

    if not lake.is_dir():
        raise FileNotFoundError(f"lake not found: {lake}")
    report = Lake(lake).fsck(repair=repair)
    for line in report.errors:
        print(f"ERROR {line}")
    for line in report.leftovers:
        print(f"leftover {line}")
    for line in report.repaired:
        print(f"repaired {line}")
    print(report.summary())
    if not report.ok:
        raise typer.Exit(2)


@app.command()
def zarr(
    run_dir: Path = typer.Argument(..., help="Run directory (.pffd)."),
    out_dir: Path = typer.Argument(..., help="Output directory for the .zarr stores."),
    codec: str = typer.Option(
        "zstd", help="zstd, blosc-zstd, blosc-lz4, blosc-lz4-bitshuffle, gzip or none."
    ),
    level: int = typer.Option(3, help="Compression level."),
    overwrite: bool = typer.Option(False, help="Replace existing stores."),
) -> None:
    """Convert a run to Zarr v3 stores (pypff's `pypff zarr` layout)."""
    from .zarr import convert_run

    for store in convert_run(run_dir, out_dir, codec=codec, level=level, overwrite=overwrite):
        print(store)


@app.command()
def sql(
    lake: Path = typer.Argument(..., help="Lake directory."),
    query: str = typer.Argument(..., help="SQL over frames, runs, files, hk and the views."),
    fmt: str = typer.Option("table", "--format", help="table, csv, json or parquet."),
    out: Path = typer.Option(None, "--out", help="Write to this file (default: stdout)."),
) -> None:
    """Run SQL over the committed lake; a table on a terminal, or csv/json/parquet."""
    from .lake import Lake

    if not lake.is_dir():
        raise FileNotFoundError(f"lake not found: {lake}")
    table = Lake(lake).sql(query).to_arrow_table()
    _emit_table(table, fmt, out)


def plain_rows(table) -> list[dict]:
    """Rows as Python values, timestamps as ISO strings (nanoseconds kept, no pandas needed)."""
    import pyarrow as pa

    columns = [
        col.cast(pa.string()) if pa.types.is_timestamp(col.type) else col
        for col in table.columns
    ]
    return pa.table(columns, names=table.column_names).to_pylist()


def _emit_table(table, fmt: str, out: Path | None) -> None:
    import json

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "table":
        console = Console(width=None if sys.stdout.isatty() else 200)
        view = Table(show_lines=False)
        for name in table.column_names:
            view.add_column(name)
        for row in plain_rows(table.slice(0, 200)):
            view.add_row(*["" if v is None else str(v) for v in row.values()])
        console.print(view)
        if table.num_rows > 200:
            console.print(f"... {table.num_rows - 200:,} more rows (use --format csv)")
    elif fmt == "csv":
        pacsv.write_csv(table, str(out) if out else sys.stdout.buffer)
    elif fmt == "json":
        text = "\n".join(json.dumps(r, default=str) for r in plain_rows(table))
        if out:
            out.write_text(text + "\n")
        else:
            print(text)
    elif fmt == "parquet":
        if out is None:
            raise ValueError("--format parquet needs --out FILE")
        pq.write_table(table, out, compression="zstd")
    else:
        raise ValueError(f"unknown --format {fmt!r} (table, csv, json or parquet)")


@app.command()
def images(
    lake: Path = typer.Argument(..., help="Lake directory."),
    query: str = typer.Option(..., "--sql", help="SQL returning run, data_product, module, frame."),
    out: Path = typer.Option(..., "--out", help="FILE.npy for one array, or a directory."),
    png: bool = typer.Option(False, help="Also write one PNG per frame into the directory."),
) -> None:
    """Fetch the images of a query result, in its row order."""
    import numpy as np

    from .lake import Lake
    from .png import write_png

    the_lake = Lake(lake)
    rel = the_lake.sql(query)
    rows = rel.to_arrow_table()
    stack = the_lake.images(rows)
    if out.suffix == ".npy":
        np.save(out, stack)
        print(f"wrote {len(stack)} images {stack.shape[1:]} {stack.dtype} to {out}")
        return
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "images.npy", stack)
    if png:
        for i, row in enumerate(plain_rows(rows)):
            name = f"{i:05d}_{row.get('data_product')}_m{row.get('module')}_f{row.get('frame')}.png"
            write_png(out / name, stack[i])
    print(f"wrote {len(stack)} images to {out}")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-lake"), help="Where to build the demo (replaced)."),
    workers: int = typer.Option(0, help="Worker processes (0: all cores)."),
) -> None:
    """Build a lake from the sample runs and a simulated module pair; answer a few questions."""
    from .demo import run_demo

    run_demo(out, workers=workers or None)


def main() -> None:
    """Entry point: run the app, turning errors into one line unless --debug."""
    try:
        app(standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(1)
    except (KeyboardInterrupt, SystemExit):
        raise
    except typer.TyperException as e:  # usage errors: typer already printed them
        sys.exit(e.exit_code)
    except Exception as e:
        if _state["debug"] or "--debug" in sys.argv:
            raise
        print(f"pfflake: error: {e}", file=sys.stderr)
        sys.exit(1)


# -- the high-energy chain: clock offsets and k-of-N coincidences (issue 14) ------------------


@app.command()
def offsets(
    lake: Path = typer.Argument(..., help="Lake directory."),
    reference: int = typer.Option(..., "--reference", help="Reference module id."),
    modules: str = typer.Option(..., "--modules", help="Modules to estimate, e.g. 2,3,4."),
    window_us: str = typer.Option("20000", "--window-us", help="Pairing window +-us."),
    bin_s: str = typer.Option("120", "--bin-s", help="Bin length in s."),
    time_base: str = typer.Option("host", "--time-base", help="host or wr."),
    where: str = typer.Option(None, "--where", help="SQL predicate on frames."),
    data_product: str = typer.Option(None, "--data-product", help="e.g. ph256."),
    cuts: bool = typer.Option(False, "--cuts/--no-cuts", help="Apply the default cuts first."),
    fmt: str = typer.Option("table", "--format", help="table, csv, json or parquet."),
    out: Path = typer.Option(None, "--out", help="Write to this file (parquet keeps params)."),
) -> None:
    """Clock offset of each module against a reference, per time bin (int ns)."""
    from .cli_events import run_offsets

    run_offsets(lake, reference, modules, window_us, bin_s, time_base, where, data_product,
                cuts, fmt, out)


@app.command()
def coincidences(
    lake: Path = typer.Argument(..., help="Lake directory."),
    modules: str = typer.Option(..., "--modules", help="Modules, e.g. 1,2,3."),
    window_us: str = typer.Option("1000", "--window-us", help="Coincidence window +-us."),
    min_multiplicity: int = typer.Option(2, "--min-multiplicity", help="k of N."),
    time_base: str = typer.Option("host", "--time-base", help="host or wr."),
    offsets_file: Path = typer.Option(None, "--offsets", help="Offsets table (parquet)."),
    reference: int = typer.Option(None, "--reference", help="Estimate offsets against it."),
    where: str = typer.Option(None, "--where", help="SQL predicate on frames."),
    data_product: str = typer.Option(None, "--data-product", help="e.g. ph256."),
    cuts: bool = typer.Option(False, "--cuts/--no-cuts", help="Apply the default cuts first."),
    rate_bin_s: str = typer.Option(None, "--rate-bin-s", help="Print the rate per bin."),
    fmt: str = typer.Option("table", "--format", help="table, csv, json or parquet."),
    out: Path = typer.Option(None, "--out", help="Write to this file (default: stdout)."),
) -> None:
    """k-of-N coincidence groups: one row per member frame (or the rate per bin)."""
    from .cli_events import run_coincidences

    run_coincidences(lake, modules, window_us, min_multiplicity, time_base, offsets_file,
                     reference, where, data_product, cuts, rate_bin_s, fmt, out)
