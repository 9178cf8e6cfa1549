"""The only edits of a store's ``zarr.json`` after :func:`~pfflake.store.layout.create_store`:
the lake grows a stream's store in place as a run grows, and creates it for its first
commit without deleting what a concurrent or killed ingest left there.

Every document is replaced atomically (written under a temporary name, renamed).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from ..faults import fault
from .layout import create_store, fsync_paths


def create_store_in_place(
    store: Path, seq, n_frames: int, configs: dict[str, Any], staging: Path, layout: dict
) -> None:
    """Create a stream's store for its first commit, never deleting what is there.

    The path may hold a killed ingest's leftovers, or the store a concurrent
    ingest of the same run is writing or has just committed. Deleting it
    (``create_store(overwrite=True)``) made that ingest fail on a vanished
    store, or blanked committed pixels until this ingest rewrote them (for
    good, had it died first). Instead the metadata documents are built in
    staging and renamed over the old ones, arrays before the group. This
    ingest rewrites every chunk of [0, n_frames) from the same source bytes
    (all-fill chunks are removed), and chunks beyond lie outside the shape.
    """
    if not store.exists():
        try:
            create_store(store, seq, n_frames, run_configs=configs, **layout)
            return
        except FileExistsError:
            pass  # a concurrent ingest created it a moment ago
    tmp = staging / "stores" / store.name
    create_store(tmp, seq, n_frames, run_configs=configs, **layout)
    for meta in sorted(tmp.rglob("zarr.json"), key=lambda m: -len(m.parts)):
        dst = store / meta.relative_to(tmp)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(meta, dst)


def resize_store(store: Path, n_frames: int) -> None:
    """Set the time length of every array of a store (metadata only; chunks stay).

    Frames beyond the committed count are invisible to the lake; shrinking
    makes a later reader of the store alone (xarray, pypff) agree with it.
    Durable when it returns: the new documents are fsynced before they replace the
    old ones (a document renamed before its data is on disk could be empty after a
    power loss, and the store unreadable), together (:func:`fsync_paths`), and their
    directories after.
    """
    written = []
    for meta in [*sorted(Path(store).glob("*/zarr.json")), Path(store) / "zarr.json"]:
        doc = json.loads(meta.read_text())
        if doc.get("node_type") == "array" and doc["shape"][0] != n_frames:
            doc["shape"][0] = n_frames
        elif doc.get("node_type") == "group" and "total_frames" in doc.get("attributes", {}):
            doc["attributes"]["total_frames"] = n_frames
        else:
            continue
        tmp = meta.with_name(f".zarr.json.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(doc, indent=2))
        written.append((tmp, meta))
    try:
        fsync_paths(tmp for tmp, _ in written)
        for tmp, meta in written:
            os.replace(tmp, meta)
            fault("store_resized")
    finally:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
    fsync_paths(meta.parent for _, meta in written)


__all__ = ["create_store_in_place", "resize_store"]
