"""What the lake records about a run's sources: file states and fingerprints, and the rows
of the ``files``, ``runs`` and ``hk`` tables for one ingest (configs redacted), staged
as Parquet files (:func:`write_small_table`)."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import schema as S
from ..errors import LakeError
from ..faults import fault as _fault
from ..file import PFFWarning
from ..hk import hk_table
from ..paths import HK_FILE_NAME, parse_pff_name, parse_run_name
from ..redact import redact
from .layout import is_lake
from .log import AddFile, FileState, Snapshot
from .tables import HK_SCHEMA
from .units import fingerprint

if TYPE_CHECKING:
    from ..run import PanosetiRun

#: Files the DAQ writes into a run directory when the recording is over (PFF-FORMAT.md);
#: ``collect_complete`` alone is not one of them (it marks the collection step).
SENTINELS = ("run_complete", "recording_ended")


def check_run_dir(run_dir: Path) -> None:
    """Refuse what is no run directory: missing, a lake, or holding no PFF data file."""
    if not run_dir.is_dir():
        raise LakeError(f"{run_dir}: run directory not found")
    if is_lake(run_dir):
        raise LakeError(f"{run_dir}: is a pfflake lake, not a run directory")
    if not any(p.name != HK_FILE_NAME for p in run_dir.glob("*.pff")):
        raise LakeError(
            f"{run_dir}: no PFF data files (*.pff) here; is it a run directory?"
        )


def recording_finished(run_dir: Path) -> bool:
    """True once the DAQ has written a run's end sentinel (see :data:`SENTINELS`)."""
    return any((Path(run_dir) / name).exists() for name in SENTINELS)


def newly_complete(root: Path, snap: Snapshot, runs: list[PanosetiRun]) -> set[str]:
    """Runs the lake holds as incomplete whose sentinel (``run_complete``,
    ``recording_ended``) has appeared since: they get a new ``runs`` row (the view keeps
    the latest per run), so a run followed while recording ends as complete, as a
    one-shot ingest of the finished run records it."""
    candidates = {
        run.run_dir.name for run in runs
        if run.run_dir.name in snap.runs and recording_finished(run.run_dir)
    }
    if not candidates:
        return set()
    paths = [str(root / e.path) for e in snap.table_files("runs")]
    rows = pq.read_table(paths, columns=[S.RUN, "complete", "version"]).to_pylist() if paths else []
    latest: dict[str, tuple[int, bool]] = {}
    for r in rows:
        if r[S.RUN] in candidates and r["version"] >= latest.get(r[S.RUN], (-1, False))[0]:
            latest[r[S.RUN]] = (r["version"], bool(r["complete"]))
    return {name for name in candidates if not latest.get(name, (0, False))[1]}


def redacted_configs(seq) -> dict[str, Any]:
    run_dir = Path(seq.file_paths[0]).parent
    out = {}
    for p in sorted(run_dir.glob("*.json")):
        if p.name.startswith("dp_manifest"):
            continue
        try:
            out[p.stem] = redact(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return out


def file_states(seq) -> list[FileState]:
    states = []
    for pf in seq.files:
        last = None
        if pf.n_frames:
            off = pf.frame_offset(pf.n_frames - 1)
            length = pf.size - pf.truncated_tail_bytes - off
            last = (off, length)
        states.append(
            FileState(
                name=pf.path.name,
                size=pf.size,
                frames=pf.n_frames,
                fingerprint=fingerprint(pf.path, pf.size, last),
                damaged_frames=sum(1 for _ in pf.damage),
                truncated_tail_bytes=pf.truncated_tail_bytes,
            )
        )
    return states


def file_row(p: Any, s: FileState, path: Path, version: int) -> dict[str, Any]:
    name = parse_pff_name(path)
    status = "damaged" if s.damaged_frames else ("tail_cut" if s.truncated_tail_bytes else "ok")
    return {
        S.RUN: p.run,
        "file": s.name,
        S.DATA_PRODUCT: name.data_product,
        S.MODULE: name.module,
        S.SEQNO: name.seqno,
        "size": s.size,
        "frames": s.frames,
        "damaged_frames": s.damaged_frames,
        "truncated_tail_bytes": s.truncated_tail_bytes,
        "fingerprint": s.fingerprint,
        "status": status,
        "version": version,
    }


def run_row(run, run_dir: Path, version: int, ident: dict[str, str],
             threshold: float | None) -> dict[str, Any]:
    rn = parse_run_name(run.run_dir)
    raw = {}
    for p in sorted(run.run_dir.glob("*.json")):
        if p.name.startswith("dp_manifest"):
            continue
        try:
            raw[p.stem] = json.loads(p.read_text())
        except (OSError, ValueError):
            raw[p.stem] = None
    sw = raw.pop("sw_info", None)
    complete = recording_finished(run.run_dir)
    return {
        S.RUN: run.run_dir.name,
        "observatory": ident["observatory"],
        "start": datetime.strptime(ident["start"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        "run_type": rn.run_type,
        "source_path": str(Path(run_dir).resolve()),
        "complete": complete,
        "configs": json.dumps(redact(raw), sort_keys=True),
        "sw_info": json.dumps(redact(sw), sort_keys=True) if sw is not None else None,
        "version": version,
        "pixels_above_threshold": threshold,
    }


def new_hk_rows(run, already: int) -> pa.Table | None:
    path = run.run_dir / HK_FILE_NAME
    if not path.is_file():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        table = hk_table(path, strict=False)
    table = table.slice(already)
    n = table.num_rows
    ts = table.column(S.UNIX_T_NS)
    return pa.table(
        {
            S.RUN: pa.array([run.run_dir.name] * n, pa.string()),
            S.UNIX_T_NS: ts,
            S.TIME: ts.cast(pa.timestamp("ns", tz="UTC")),
            "device": table.column("device"),
            "field": table.column("field"),
            "value": table.column("value"),
            "text": table.column("text"),
        },
        schema=HK_SCHEMA,
    )


def write_small_table(staging: Path, table: str, txn: str, schema: pa.Schema,
                      rows: list[dict[str, Any]]) -> list[AddFile]:
    """``rows`` as ``table/<txn>.parquet`` in staging; its entry, or none. Not fsynced
    here: :func:`pfflake.lake.ingest.publish_files` syncs every file it moves at once."""
    if not rows:
        return []
    rel = Path(table) / f"{txn}.parquet"
    out = staging / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out, compression="zstd")
    _fault("table_staged")
    return [AddFile(table, rel.as_posix(), len(rows), out.stat().st_size)]



__all__ = ["SENTINELS", "check_run_dir", "file_row", "file_states", "new_hk_rows", "newly_complete",
           "recording_finished", "redacted_configs", "run_row", "write_small_table"]
