"""The ``pfflake`` command line.

Exit codes, the same for every command: **0** success (``fsck``: clean);
**1** an error, or problems found (``fsck``: damage, or leftovers not
removed); **2** a usage error (unknown command or option, missing argument),
printed as the usage line and the reason on stderr. Errors are one line on
stderr (``pfflake: error: ...``); ``--debug`` shows the traceback. Warnings are
one line each (``pfflake: warning: ...``), each printed once.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import typer

from .console import emit_table as _emit_table
from .console import make_console as _console
from .console import plain_rows, print_table  # noqa: F401 (pfflake.cli.X kept importable)

try:  # typer >= 0.24 vendors click; older typer uses click itself
    from typer._click import exceptions as _cx
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover
    from click import exceptions as _cx
    from click import get_current_context


def _usage(message: str) -> _cx.UsageError:
    """A usage error of the running command (printed with its usage line; exit 2)."""
    return _cx.UsageError(message, ctx=get_current_context(silent=True))

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fast PANOSETI PFF I/O and a columnar data lake. "
    "Exit codes: 0 ok, 1 error or problems found, 2 usage error.",
)
_state = {"debug": False}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pfflake")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        print(f"pfflake {_version()}")
        raise typer.Exit(0)


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    _state["debug"] = debug


@app.command()
def info(paths: list[Path] = typer.Argument(..., help="Run directories or PFF files.")) -> None:
    """Summarise runs or files: streams, frames, time span, damage, clock quality.

    Damage is reported, not an error (exit 0); a path that is neither a run
    directory nor a readable PFF data file exits 1.
    """
    from .cli_runs import show_info

    failed = show_info(paths, _console())
    if failed:
        raise _cx.ClickException("; ".join(failed))


@app.command()
def ingest(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories (.pffd) to ingest."),
    lake: Path = typer.Option(
        ..., "--lake", help="Lake directory: an existing lake, or a new or empty directory."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Remove the runs the lake holds and ingest them again, in "
        "one commit (a run whose source changed; older versions keep the old one)."),
    workers: int = typer.Option(0, help="Worker processes (0: all cores)."),
    lenient: bool = typer.Option(False, help="Skip damaged frames instead of failing."),
    threshold: float = typer.Option(
        None, help="Pixel value above which pixels_above counts (recorded in the runs table)."
    ),
    progress: bool = typer.Option(None, help="Progress bar (default: on a terminal)."),
    scheduler: str = typer.Option(
        None, "--scheduler",
        help="Dask scheduler address (tcp://host:8786): run the work on that cluster "
        "(needs pfflake[distributed]; workers must see the same paths).",
    ),
    time_chunk: int = typer.Option(
        None, "--time-chunk", min=1, help="New stores: frames per image chunk (docs/SCALING.md)."
    ),
    image_shard: int = typer.Option(
        None, "--image-shard", min=1, help="New stores: frames per image shard file."
    ),
    shard_factor: int = typer.Option(
        None, "--shard-factor", min=0, help="New stores: header-array chunks per shard file."
    ),
    follow: bool = typer.Option(
        False, "--follow",
        help="Keep ingesting while the runs record: a commit every --interval seconds, "
        "until their run_complete/recording_ended sentinel (or SIGINT/SIGTERM: final "
        "commit, exit 0).",
    ),
    interval: float = typer.Option(
        1.0, "--interval", min=0.01, help="--follow: seconds between commits."
    ),
    compact_every: int = typer.Option(
        32, "--compact-every", min=0,
        help="--follow: merge the small files every N commits (0: only at the end).",
    ),
) -> None:
    """Add runs to a lake: metadata to Parquet, pixels to Zarr v3, in one atomic commit.

    Layout options apply to streams new to the lake (existing stores keep theirs);
    any given replaces the default layout (the others keep their lake defaults).
    With --follow: one commit every --interval seconds while the runs record (one
    worker unless --workers is given).
    """
    if follow and scheduler:
        raise _usage("--follow runs on this machine; it does not take --scheduler")
    from .cli_runs import run_ingest

    run_ingest(run_dirs, lake, replace=replace, workers=workers, lenient=lenient,
               threshold=threshold, progress=progress, scheduler=scheduler,
               time_chunk=time_chunk, image_shard=image_shard, shard_factor=shard_factor,
               follow=follow, interval=interval, compact_every=compact_every)


@app.command()
def fsck(
    lake: Path = typer.Argument(..., help="Lake directory."),
    repair: bool = typer.Option(False, help="Remove uncommitted leftovers."),
    sources: bool = typer.Option(
        False, "--sources",
        help="Also re-read every ingested byte range of the source PFF files and compare "
        "checksums (finds any changed byte; reads all the source data).",
    ),
) -> None:
    """Check committed files against the log and find leftovers of interrupted ingests.

    Exit 0: clean (after --repair: nothing left). Exit 1: damage found, or
    leftovers that --repair was not asked to (or could not) remove.
    """
    from .lake import Lake

    report = Lake(lake).fsck(repair=repair, sources=sources)
    for line in report.errors:
        print(f"ERROR {line}")
    for line in report.leftovers:
        print(f"leftover {line}")
    for line in report.repaired:
        print(f"repaired {line}")
    print(report.summary())
    if not report.clean:
        raise typer.Exit(1)


# -- curating a lake: remove, compact, vacuum (issue 16; pfflake.lake.maintain) ---------------


@app.command()
def remove(
    lake: Path = typer.Argument(..., help="Lake directory."),
    runs: list[str] = typer.Argument(..., help="Run names (as in the runs table)."),
) -> None:
    """Take runs out of the lake in one commit (older versions keep them until vacuum)."""
    from .lake import Lake

    commit = Lake(lake).remove(runs)
    print(f"removed {len(runs)} run(s): {len(commit.remove)} file(s) out, "
          f"{len(commit.add)} rewritten; lake at version {commit.version}")


@app.command()
def compact(
    lake: Path = typer.Argument(..., help="Lake directory."),
    target_mb: float = typer.Option(128.0, "--target-mb", min=0.001,
                                    help="Size to merge small Parquet files up to, in MB."),
    min_files: int = typer.Option(2, "--min-files", min=2,
                                  help="Rewrite a stream only if this many files merge."),
) -> None:
    """Merge small Parquet files into large ones in one commit (rows unchanged)."""
    from .lake import Lake

    lk = Lake(lake)
    commit = lk.compact(target_bytes=int(target_mb * 1e6), min_files=min_files)
    if commit is None:
        print(f"nothing to compact; the lake is unchanged at version {lk.version}")
    else:
        print(f"compacted {len(commit.remove)} file(s) into {len(commit.add)}; "
              f"lake at version {commit.version}")


@app.command()
def vacuum(
    lake: Path = typer.Argument(..., help="Lake directory."),
    older_than: str = typer.Option(..., "--older-than",
                                   help="Keep what versions newer than this need: 7d, 12h, 0s."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List, delete nothing."),
) -> None:
    """Delete files no version newer than --older-than needs (never the latest's)."""
    from .lake import Lake
    from .lake.maintain import parse_duration

    try:
        age = parse_duration(older_than)
    except ValueError as e:
        raise _usage(f"--older-than: {e}") from None
    report = Lake(lake).vacuum(age, dry_run=dry_run)
    if dry_run:
        for path in [*report.files, *report.stores, *report.staging]:
            print(path)
    print(report.summary())


@app.command()
def zarr(
    run_dir: Path = typer.Argument(..., help="Run directory (.pffd)."),
    out_dir: Path = typer.Argument(..., help="Output directory for the .zarr stores."),
    codec: str = typer.Option(
        "zstd", help="zstd, blosc-zstd, blosc-lz4, blosc-lz4-bitshuffle, gzip or none."
    ),
    level: int = typer.Option(3, help="Compression level."),
    time_chunk: int = typer.Option(
        0, "--time-chunk", help="Frames per time chunk (0 = auto-size to ~8 MB, as pypff)."
    ),
    shard_factor: int = typer.Option(
        0, "--shard-factor", help="Inner chunks per shard file (0 = no sharding)."
    ),
    overwrite: bool = typer.Option(False, help="Replace existing stores."),
) -> None:
    """Convert a run to Zarr v3 stores (pypff's `pypff zarr convert` layout and options)."""
    from .zarr import convert_run

    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    try:
        stores = convert_run(run_dir, out_dir, codec=codec, level=level,
                             time_chunk=time_chunk or None, shard_factor=shard_factor,
                             overwrite=overwrite)
    except FileExistsError as e:
        raise _cx.ClickException(
            str(e).replace("pass overwrite=True", "pass --overwrite")
        ) from None
    for store in stores:
        print(store)


def _read_sql(query: str | None, file: str | None) -> str:
    if (query is None) == (file is None):
        raise _usage("give the SQL either as QUERY or with --file F.sql (- for stdin)")
    if file is None:
        return query
    if file == "-":
        return sys.stdin.read()
    path = Path(file)
    if not path.is_file():
        raise FileNotFoundError(f"SQL file not found: {path}")
    return path.read_text()


@app.command()
def sql(
    lake: Path = typer.Argument(..., help="Lake directory."),
    query: str = typer.Argument(
        None, help="SQL over frames, runs, files, hk and the views (or use --file)."
    ),
    file: str = typer.Option(
        None, "--file", "-f", help="Read the SQL from this file (- for standard input)."
    ),
    fmt: str = typer.Option("table", "--format", help="table, csv, json or parquet."),
    out: Path = typer.Option(None, "--out", help="Write to this file (default: stdout)."),
    as_of: str = typer.Option(None, "--as-of", help="An older version: its number, or an ISO "
                              "8601 time (UTC if naive) for the last commit at or before it."),
) -> None:
    """Run SQL over the committed lake; a table on a terminal, or csv/json/parquet."""

    if fmt not in ("table", "csv", "json", "parquet"):
        raise _cx.BadParameter(f"{fmt!r} is not one of table, csv, json, parquet",
                               ctx=get_current_context(silent=True), param_hint="--format")
    if fmt == "parquet" and out is None:
        raise _usage("--format parquet needs --out FILE")
    text = _read_sql(query, file)
    table = _lake_view(lake, as_of).sql(text).to_arrow_table()
    _emit_table(table, fmt, out)


def _lake_view(lake: Path, as_of: str | None):
    """The lake at ``--as-of`` (digits: a version, else an ISO 8601 time), or its latest."""
    from .lake import Lake

    text = (as_of or "").strip()
    return Lake(lake).at(int(text)) if text.isdigit() else Lake(lake).at(time=text or None)


@app.command()
def images(
    lake: Path = typer.Argument(..., help="Lake directory."),
    query: str = typer.Option(..., "--sql", help="SQL returning run, data_product, module, frame."),
    out: Path = typer.Option(..., "--out", help="FILE.npy for one array, or a directory."),
    png: bool = typer.Option(False, help="Also write one PNG per frame into the directory."),
    data_product: str = typer.Option(
        None, "--data-product", help="Shape and dtype of an empty result (img16, ph256, ...)."
    ),
    as_of: str = typer.Option(None, "--as-of", help="An older version: number or ISO time."),
) -> None:
    """Fetch the images of a query result, in its row order."""
    import numpy as np

    from .lake.images import images as view_images

    if png and out.suffix == ".npy":
        raise _usage("--png writes one PNG per frame into a directory: give --out DIR, "
                               "not a .npy file")
    the_lake = _lake_view(lake, as_of)  # rows and pixels from one version
    rows = the_lake.sql(query).to_arrow_table()
    stack = view_images(the_lake, rows, data_product=data_product)
    if out.suffix == ".npy":
        np.save(out, stack)
        print(f"wrote {len(stack)} images {stack.shape[1:]} {stack.dtype} to {out}")
        return
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "images.npy", stack)
    if png:
        from .png import frame_title, write_frame_png

        titled = _with_times(the_lake, rows)
        for i, row in enumerate(plain_rows(titled)):
            name = f"{i:05d}_{row.get('data_product')}_m{row.get('module')}_f{row.get('frame')}.png"
            write_frame_png(out / name, stack[i], title=frame_title(row))
    print(f"wrote {len(stack)} images {stack.shape[1:]} {stack.dtype} to {out}")


def _with_times(lake, rows):
    """``rows`` with each frame's ``unix_t_ns`` (for PNG titles) when the query left it out."""
    keys = ("run", "data_product", "module", "frame")
    if "unix_t_ns" in rows.column_names or not all(k in rows.column_names for k in keys):
        return rows
    import pyarrow as pa

    con = lake.connection()
    wanted = rows.select(list(keys)).append_column("_i", pa.array(range(rows.num_rows)))
    con.register("_wanted", wanted)
    try:
        return con.sql(
            "SELECT w.run, w.data_product, w.module, w.frame, f.unix_t_ns FROM _wanted w "
            "LEFT JOIN frames f USING (run, data_product, module, frame) ORDER BY w._i"
        ).to_arrow_table()
    finally:
        con.unregister("_wanted")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-lake"), help="Where to build the demo (replaced)."),
    workers: int = typer.Option(0, help="Worker processes (0: all cores)."),
) -> None:
    """Build a lake from the sample runs and a simulated module pair; answer a few questions."""
    from .demo import run_demo

    run_demo(out, workers=workers or None)


@app.command()
def report(
    lake: Path = typer.Argument(..., help="Lake directory."),
    run: list[str] = typer.Option(None, "--run", help="A run to report (repeatable)."),
    night: str = typer.Option(
        None, "--night", help="YYYY-MM-DD: runs whose first frame is from D 12:00 to D+1 12:00 UTC."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Directory for index.html, figures/, manifest.json."
    ),
    compute_pedestals: bool = typer.Option(
        True, help="Commit pedestals for streams that have none (else: 'no calibration')."
    ),
    gallery: int = typer.Option(8, help="Brightest events shown."),
) -> None:
    """Write a static HTML quality report of a night (or runs) from the lake alone."""
    from .report.command import check_night, report_command

    if run and night:
        raise _usage("give --run or --night, not both")
    try:
        night = check_night(night)
    except ValueError as e:
        raise _cx.BadParameter(str(e), ctx=get_current_context(silent=True),
                               param_hint="--night") from None
    raise typer.Exit(report_command(lake, run, night, out, compute_pedestals=compute_pedestals,
                                    gallery=gallery))


# -- entry point ---------------------------------------------------------------------


class _OnceHandler(logging.Handler):
    """Log warnings as ``pfflake: warning: ...``, each distinct message once."""

    def __init__(self, seen: set[str]) -> None:
        super().__init__(logging.WARNING)
        self.seen = seen

    def emit(self, record: logging.LogRecord) -> None:
        _warn_once(self.seen, record.getMessage())


# -- pypff's CLI faces (issue 12): ``pfflake show`` / ``pfflake profile`` ------


@app.command()
def show(
    run_dir: Path = typer.Argument(..., help="Path to the .pffd run directory."),
    details: bool = typer.Option(False, "--details", "-d", help="Show individual PFF files."),
) -> None:
    """The structure of a run as a tree (pypff's ``show``; ``pfflake info`` gives the table)."""
    from .profile import show_run

    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    show_run(run_dir, details=details)


@app.command()
def profile(
    run_dir: Path = typer.Argument(..., help="Path to the .pffd run directory."),
    product: list[str] = typer.Option(None, "--product", "-p", help="Streams (default: all)."),
    frames: int = typer.Option(1000, "--frames", "-n", help="Frames per sequential/bulk read."),
    step: int = typer.Option(10, "--step", "-s", help="Step of the strided read."),
    random: int = typer.Option(100, "--random", "-r", help="Random frames read."),
    no_pypff: bool = typer.Option(False, "--no-pypff", help="Do not time pypff side by side."),
) -> None:
    """Time the main reads as pypff's ``profile`` does, with pypff side by side if installed."""
    from .profile import print_profile, profile_run

    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    rows = profile_run(run_dir, product or None, n_frames=frames, step=step,
                       random_samples=random, compare=not no_pypff)
    print_profile(rows, run_dir.name)


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


def _warn_once(seen: set[str], message: str) -> None:
    line = " ".join(str(message).split())
    if line not in seen:
        seen.add(line)
        print(f"pfflake: warning: {line}", file=sys.stderr)


def _setup_messages() -> None:
    seen: set[str] = set()
    logger = logging.getLogger("pfflake")
    logger.addHandler(_OnceHandler(seen))
    logger.propagate = False
    warnings.showwarning = lambda message, *_a, **_k: _warn_once(seen, str(message))


_SQL_COMMANDS = ("sql",)


def _protect_sql_text(args: list[str]) -> list[str]:
    """SQL text that starts with a ``--`` comment is not an option: move it after ``--``.

    A token starting with ``-- `` (or ``--`` and a line break) can never be an
    option name, so ``pfflake sql LAKE "$(cat q.sql)"`` works as typed.
    """
    if not args or "--" in args or not any(a in _SQL_COMMANDS for a in args):
        return args
    sqlish = [a for a in args if a[:3] in ("-- ", "--\n", "--\t", "--\r")]
    if len(sqlish) != 1:
        return args
    i = args.index(sqlish[0])
    if i > 0 and args[i - 1] in ("--sql", "--file", "-f", "--out", "--format"):
        return args  # an option's value: click takes it as is
    return [a for j, a in enumerate(args) if j != i] + ["--", sqlish[0]]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; errors become one line and an exit code (see module doc)."""
    args = _protect_sql_text(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in args
    _setup_messages()
    try:
        rc = app(args=args, prog_name="pfflake", standalone_mode=False)
    except _cx.NoArgsIsHelpError:  # the help was printed
        sys.exit(2)
    except _cx.UsageError as e:  # usage line, hint and reason on stderr; exit 2
        e.show()
        sys.exit(e.exit_code)
    except _cx.ClickException as e:  # our own one-line errors; exit 1
        print(f"pfflake: error: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("pfflake: aborted", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("pfflake: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:
        if _state["debug"] or debug:
            raise
        print(f"pfflake: error: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
