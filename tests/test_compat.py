"""Every name user code imported before the store/ and lake/ packages still imports, and is
the object the new home defines (a copy would silently diverge)."""

from __future__ import annotations

import importlib

import pytest

OLD_NAMES = {
    "pfflake.lake": [
        "Lake", "LakeError", "CRASH_POINTS", "IMAGE_CHUNK_BYTES", "IMAGE_SHARD_FRAMES",
        "LAKE_CODEC", "FILES_SCHEMA", "HK_SCHEMA", "RUNS_SCHEMA", "STAGING", "UNIT_FRAMES",
        "UnitTask", "UnitResult", "IngestResult", "is_lake", "check_lake_target",
        "lake_zarr_layout", "publish_commit", "resize_store", "safe_name", "source_checksums",
    ],
    "pfflake.log": [
        "LOG_DIR", "CommitConflict", "FileState", "StreamState", "Snapshot", "log_versions",
        "read_commit", "load_snapshot", "apply_commit", "publish_commit",
    ],
    "pfflake.fsck": ["FsckReport", "fsck"],
    "pfflake.distributed": [
        "FAULT_ENV", "TASK_RETRIES", "connect", "require_dask", "run_units", "to_dask",
        "images_dask",
    ],
    "pfflake.query": [
        "SCAN_TABLES", "QueryError", "FrameNotFoundError", "HKCoverageWarning", "frames_schema",
        "table_schema", "register_views", "views_dir", "examples_dir", "scan", "images",
        "images_at", "frames_with_hk", "coincidence_sql", "coincidences", "light_curve",
    ],
    "pfflake.zarr": [
        "SPEC_VERSION", "CODECS", "HEADER_DTYPES", "IMAGES", "UNIX_T_NS", "TIME_QUALITY",
        "FrameWriter", "PanosetiZarrRun", "PanosetiZarrStore", "ZarrLayoutError", "convert_run",
        "convert_sequence", "create_store", "open_zarr_run", "unit_ranges", "write_frames",
        "write_sequence_range", "write_sidecar", "write_unit", "zarr_name",
        "default_time_chunk", "default_ts_chunk", "header_dtype",
    ],
    # moved into lake/ (the analysis that commits through the log)
    "pfflake.caltables": [
        "CALIBRATION_SCHEMA",
        "KINDS",
        "Calibration",
        "CalibrationNotFoundError",
        "CalibrationResult",
        "calibrated_images",
        "calibration_rows",
        "compute_gain",
        "compute_pedestals",
        "lookup",
    ],
    "pfflake.derived": [
        "UnitOutput",
        "cleanup",
        "commit_outputs",
        "new_staging",
        "run_tasks",
        "write_staged",
    ],
    "pfflake.dl1": [
        "DL1_SCHEMA",
        "Dl1Recipe",
        "Dl1Result",
        "compute_dl1",
    ],
}

NEW_HOMES = {
    "pfflake.lake": "pfflake.lake.lake",
    "pfflake.log": "pfflake.lake.log",
    "pfflake.fsck": "pfflake.lake.fsck",
    "pfflake.distributed": "pfflake.lake.cluster",
    "pfflake.query": "pfflake.lake.query",
    "pfflake.caltables": "pfflake.lake.caltables",
    "pfflake.derived": "pfflake.lake.derived",
    "pfflake.dl1": "pfflake.lake.dl1",
}


@pytest.mark.parametrize("module", sorted(OLD_NAMES))
def test_old_names_import(module):
    mod = importlib.import_module(module)
    missing = [n for n in OLD_NAMES[module] if not hasattr(mod, n)]
    assert missing == []
    assert sorted(OLD_NAMES[module]) == sorted(set(OLD_NAMES[module]))


@pytest.mark.parametrize("old, new", sorted(NEW_HOMES.items()))
def test_faces_hold_the_same_objects(old, new):
    a, b = importlib.import_module(old), importlib.import_module(new)
    for name in OLD_NAMES[old]:
        if hasattr(b, name):
            assert getattr(a, name) is getattr(b, name), name


def test_patch_targets_are_where_the_code_reads_them():
    """Tests and users patch these; they must be globals of the module that uses them."""
    impl = importlib.import_module("pfflake.lake.ingest")
    for name in ("_fault", "publish_commit", "UNIT_FRAMES"):
        assert name in vars(impl), name
    # ``pfflake.lake.ingest`` is the module (the package must not shadow it with the
    # function, or every patch of "pfflake.lake.ingest.X" would miss).
    assert importlib.import_module("pfflake.lake").ingest is impl
    units = importlib.import_module("pfflake.lake.units")
    assert "source_checksums" in vars(units)  # benchmarks/bench_lake.py --checksums


def test_sql_files_are_found():
    from pfflake.lake.query import examples_dir, views_dir

    assert sorted(p.name for p in views_dir().glob("*.sql"))
    assert sorted(p.name for p in examples_dir().glob("*.sql"))
