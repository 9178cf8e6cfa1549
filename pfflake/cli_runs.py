"""The work behind ``pfflake info`` and ``pfflake ingest``.

:mod:`pfflake.cli` declares the options and checks their combinations (usage
errors, exit 2); the work is here. Errors are raised as exceptions whose
message is the one line the CLI prints (exit 1).
"""

from __future__ import annotations

import logging
import warnings
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from .file import no_frames_reason
from .lake import LAKE_CODEC, Lake
from .lake.cluster import connect
from .paths import HK_FILE_NAME, parse_pff_name
from .run import PanosetiRun
from .sequence import sequence_info


def fmt_ns(ns: int | None) -> str:
    """``unix_t_ns`` as UTC to the nanosecond (``-`` for none)."""
    if ns is None:
        return "-"
    sec, rem = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rem:09d}Z"


def file_problems(files) -> list[str]:
    """One line per problem of each file (no whole frame, unreadable, cut tail, damage)."""
    out = []
    for f in files:
        if f.frames == 0 and not f.error:
            out.append(f"{f.path.name}: {no_frames_reason(f)}")
            continue
        if f.error:
            out.append(f"{f.path.name}: {f.error}")
            continue
        if f.truncated_tail_bytes:
            out.append(f"{f.path.name}: last {f.truncated_tail_bytes} B cut short")
        if f.damage:
            first = f.damage[0]
            out.append(f"{f.path.name}: {len(f.damage)} damaged stretch(es), first at byte "
                       f"{first.offset}: {first.reason}")
    return out


def show_info(paths: list[Path], console: Console) -> list[str]:
    """Print the summary of each run directory or file; return the paths that failed
    (neither a run directory nor a readable PFF data file), one message each."""
    failed: list[str] = []
    for path in paths:
        # info reports damage and skipped files itself: no log line repeats them.
        quiet = logging.getLogger("pfflake")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        caught = warnings.catch_warnings()
        caught.__enter__()
        warnings.simplefilter("ignore")
        try:
            if path.is_dir():
                run = PanosetiRun(path, strict=False)
                rinfo = run.info()
                run.close()
                products, skipped = rinfo.products, rinfo.skipped_files
                title = f"run {path}"
                extra = [f"configs: {', '.join(rinfo.configs) or '-'}",
                         f"hk records: {rinfo.hk_records}"]
                if rinfo.error:
                    extra.append(f"[red]error: {rinfo.error}[/]")
                if not products and not skipped:
                    failed.append(f"{path}: no PFF data files here (not a run directory?)")
            elif path.is_file():
                if path.name == HK_FILE_NAME:
                    raise ValueError(
                        f"{path}: housekeeping, not a data file; `pfflake info` its run "
                        "directory, or query the lake's hk table"
                    )
                parse_pff_name(path)
                products, skipped, title, extra = [sequence_info([path])], {}, f"file {path}", []
            else:
                raise FileNotFoundError(f"no such file or directory: {path}")
        finally:
            caught.__exit__(None, None, None)
            quiet.setLevel(level)
        console.print(f"[bold]{title}[/]")
        for p in products:
            flags = ", ".join(f"{k}={v}" for k, v in p.quality_counts.items() if v) or "ok"
            problems = file_problems(p.files) + ([f"error: {p.error}"] if p.error else [])
            if path.is_file() and p.frames == 0 and problems:
                failed.append(f"{path}: {problems[0].split(': ', 1)[-1]}")
            console.print(
                f"  [green]{p.name.split('Z.', 1)[-1]}[/]: {len(p.files)} file(s), "
                f"{p.frames:,} frames"
            )
            if p.frames:
                console.print(f"    first {fmt_ns(p.first_unix_t_ns)}")
                console.print(f"    last  {fmt_ns(p.last_unix_t_ns)}")
                console.print(f"    clock {flags}")
            for line in problems or ["no damage"]:
                name, _, why = line.rpartition(".pff: ")
                for part in ([f"{name}.pff:", f"  {why}"] if name else [line]):
                    console.print(f"    {part}", highlight=False, markup=False, overflow="fold")
        for name, why in skipped.items():
            console.print(f"  [yellow]skipped {name}: {why}[/]")
        for line in extra:
            console.print(f"  {line}")
    return failed


def run_ingest(run_dirs: list[Path], lake: Path, *, replace: bool, workers: int,
               lenient: bool, threshold: float | None, progress: bool | None,
               scheduler: str | None, time_chunk: int | None, image_shard: int | None,
               shard_factor: int | None, follow: bool, interval: float,
               compact_every: int = 32) -> None:
    """``pfflake ingest``: one commit, or with ``follow`` one every ``interval`` seconds
    until the runs' sentinel (or SIGINT/SIGTERM). Prints the summary."""
    for d in run_dirs:
        if d.exists() and not d.is_dir():
            raise NotADirectoryError(f"{d}: not a run directory (ingest takes run "
                                     "directories, *.pffd)")
        if not d.is_dir():
            raise FileNotFoundError(f"run directory not found: {d}")
    layout = {k: v for k, v in (("time_chunk", time_chunk), ("image_shard", image_shard),
                                ("shard_factor", shard_factor)) if v is not None}
    if layout:
        layout.setdefault("codec", LAKE_CODEC)
    if follow:
        the_lake = Lake(lake, **layout)

        def show(r) -> None:
            print(f"version {r.version}: +{r.frames:,} frames", flush=True)

        print(the_lake.follow(run_dirs, interval=interval, workers=workers or 1,
                              strict=not lenient, threshold=threshold,
                              on_commit=show, compact_every=compact_every).summary())
        return
    client = None
    if scheduler:
        client = connect(scheduler)
    try:
        front = Lake(lake, **layout)
        result = (front.replace if replace else front.ingest)(
            run_dirs, workers=workers or None, strict=not lenient, threshold=threshold,
            progress=progress, client=client,
        )
    finally:
        if client is not None:
            client.close()
    print(result.summary())


__all__ = ["file_problems", "fmt_ns", "run_ingest", "show_info"]
