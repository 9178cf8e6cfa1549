"""Security: no credential from any config leaks; no name makes pfflake write outside
the lake root.

Secrets: the real legacy run (``tests/data/legacy-run``), whose obs_config.json
holds a WPS URL with a password, plus the simulator's planted secrets (a URL
credential and a ``password`` key). Every byte of the lake (Parquet, Zarr
``zarr.json`` attributes, commit JSON), every log record at DEBUG, every CLI
output, and the message and full traceback of forced failures are searched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import pytest

from pfflake import PFFWarning
from pfflake.lake import Lake, LakeError
from tests.conftest import LEGACY_RUN
from tests.reliability._lakes import small_run

REPO = Path(__file__).parents[2]


def legacy_secrets() -> list[str]:
    text = (LEGACY_RUN / "obs_config.json").read_text()
    found = re.findall(r"://[^:/@\s\"]+:([^@\s\"]+)@", text)
    assert found, "the legacy sample no longer holds a URL password"
    return sorted(set(found))


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sec")
    sim = small_run(root / "sim", n_frames=40, frames_per_file=20)
    secrets = legacy_secrets() + list(sim.secrets)
    assert all(len(s) >= 6 for s in secrets)
    return root, sim.path, secrets


def _leaks(blob: str | bytes, secrets: list[str]) -> list[str]:
    data = blob if isinstance(blob, bytes) else blob.encode("utf-8", "replace")
    return [s for s in secrets if s.encode() in data]


def _cli(*args: str) -> subprocess.CompletedProcess:
    code = "\n".join(
        ["import sys", f"sys.argv = ['pfflake', *{list(args)!r}]", "from pfflake.cli import main",
         "main()"]
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=REPO, timeout=300
    )


def test_no_secret_in_lake_logs_or_cli(sources, tmp_path, caplog):
    _, sim, secrets = sources
    lake = tmp_path / "lake"
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        Lake(lake).ingest([LEGACY_RUN, sim], workers=1)
    files = [p for p in lake.rglob("*") if p.is_file()]
    assert any(p.name == "zarr.json" for p in files) and any(p.suffix == ".parquet" for p in files)
    for p in files:
        assert not _leaks(p.read_bytes(), secrets), p
    logged = "\n".join(
        r.getMessage() + (("\n" + "".join(traceback.format_exception(*r.exc_info)))
                          if r.exc_info else "")
        for r in caplog.records
    )
    assert not _leaks(logged, secrets)
    # the configs are there, redacted (the check is not vacuous)
    configs = Lake(lake).sql("SELECT configs FROM runs ORDER BY run").fetchall()
    assert any("***" in c for (c,) in configs)
    outputs = [
        _cli("ingest", "--lake", str(tmp_path / "cli_lake"), "--workers", "1",
             str(LEGACY_RUN), str(sim)),
        _cli("info", str(LEGACY_RUN)),
        _cli("info", str(sim)),
        _cli("fsck", str(lake)),
        _cli("sql", str(lake), "SELECT run, configs, sw_info FROM runs"),
        _cli("--debug", "sql", str(lake), "SELECT no_such_column FROM runs"),
    ]
    for proc in outputs:
        assert not _leaks(proc.stdout + proc.stderr, secrets), proc.args
    assert outputs[0].returncode == 0, outputs[0].stderr.decode()[-2000:]
    assert b"***" in outputs[4].stdout  # the redacted configs were printed
    assert outputs[5].returncode != 0 and b"Traceback" in outputs[5].stderr


def _run_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _failure_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + str(exc)


def test_no_secret_in_forced_failures(sources, tmp_path, caplog, monkeypatch):
    """Failures while the configs are loaded: corrupt data, broken configs, I/O errors."""
    _, _, secrets = sources
    caplog.set_level(logging.DEBUG)
    failures: list[str] = []
    # 1. a corrupt data file (strict ingest fails on it)
    run = _run_copy(LEGACY_RUN, tmp_path / "corrupt" / LEGACY_RUN.name)
    pff = next(run.glob("*.pff"))
    data = bytearray(pff.read_bytes())
    data[: 40] = b"\xff" * 40
    pff.write_bytes(bytes(data))
    # 2. configs that do not parse, still holding the secret
    broken = _run_copy(LEGACY_RUN, tmp_path / "broken" / LEGACY_RUN.name)
    cfg = broken / "obs_config.json"
    cfg.write_text(cfg.read_text()[: cfg.read_text().index("@") + 20])
    # 3. configs of the wrong types around the secret
    typed = _run_copy(LEGACY_RUN, tmp_path / "typed" / LEGACY_RUN.name)
    doc = json.loads((typed / "obs_config.json").read_text())
    doc["domes"] = [{"wps": doc.get("wps", "x"), "modules": "not-a-list"}]
    doc["wps"] = {"url": f"http://admin:{secrets[0]}@host", "nested": [1, {"password": 5}]}
    (typed / "obs_config.json").write_text(json.dumps(doc))
    for i, r in enumerate([run, broken, typed]):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PFFWarning)
                Lake(tmp_path / f"lake{i}").ingest([r], workers=1)
        except Exception as e:
            failures.append(_failure_text(e))
        else:
            failures.append(json.dumps(Lake(tmp_path / f"lake{i}").sql(
                "SELECT * FROM runs").fetchall(), default=str))
        proc = _cli("ingest", "--lake", str(tmp_path / f"cli{i}"), "--workers", "1", str(r))
        failures.append((proc.stdout + proc.stderr).decode())
        proc = _cli("--debug", "info", str(r))
        failures.append((proc.stdout + proc.stderr).decode())
    # 4. an I/O error at commit time
    def refuse(root, commit):
        raise PermissionError(13, "Permission denied", str(root / "_pfflake_log"))

    monkeypatch.setattr("pfflake.lake.ingest.publish_commit", refuse)
    with pytest.raises(LakeError) as err:
        Lake(tmp_path / "lake_io").ingest([LEGACY_RUN], workers=1)
    failures.append(_failure_text(err.value))
    assert len(failures) >= 10
    for text in failures:
        assert not _leaks(text, secrets), text[-3000:]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not _leaks(logged, secrets)


# ---------------------------------------------------------------------------------- paths

HOSTILE_NAMES = [
    "obs_..\\..\\evil.start_2024-07-01T05:00:00Z.runtype_sci-obs.pffd",
    "obs_Lick.start_2024-07-01T05:00:00Z.runtype_..pffd",
    "..pffd",
    ".pffd",
    "...",
    "obs_x:y.start_2024-07-01T05:00:00Z.runtype_$(touch x).pffd",
    "obs_%2e%2e%2fetc.pffd",
]


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in root.rglob("*"):
        if skip == p or skip in p.parents:
            continue
        st = p.lstat()  # directories: existence only (the lake's parent gains an entry)
        out[str(p)] = (0, 0) if p.is_dir() and not p.is_symlink() else (st.st_size, st.st_mtime_ns)
    return out


def _check_contained(lake: Path) -> None:
    real = lake.resolve()
    for p in lake.rglob("*"):
        assert not p.is_symlink(), p
        assert p.resolve().is_relative_to(real), p


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_run_names_stay_inside(sources, tmp_path, name):
    _, sim, _ = sources
    run = _run_copy(sim, tmp_path / "runs" / name)
    lake = tmp_path / "area" / "lake"
    lake.parent.mkdir()
    (tmp_path / "area" / "sibling").mkdir()
    before = _snapshot(tmp_path, lake)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PFFWarning)
            Lake(lake).ingest([run], workers=1)
    except (LakeError, ValueError) as e:  # refusing a name is fine; escaping is not
        assert str(lake) in str(e) or name in str(e), e
    assert _snapshot(tmp_path, lake) == before
    if lake.exists():
        _check_contained(lake)
        assert Lake(lake).fsck().ok


def test_paths_with_dotdot_and_symlinks_stay_inside(sources, tmp_path):
    """A run given through ``..`` and through symlinks (to the run, and to files
    outside it) is read, never written, and its data lands only in the lake."""
    _, sim, _ = sources
    outside = tmp_path / "outside"
    run = _run_copy(sim, outside / "src" / sim.name)
    # a symlinked data file and a symlinked config pointing outside the run
    extra = next(run.glob("*seqno_1.pff"))
    target = outside / "elsewhere.pff"
    shutil.move(extra, target)
    extra.symlink_to(target)
    linked = tmp_path / "links" / "link.pffd"
    linked.parent.mkdir()
    linked.symlink_to(run, target_is_directory=True)
    lake = tmp_path / "lake"
    before = _snapshot(tmp_path, lake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        Lake(lake).ingest([run / ".." / run.name, linked], workers=1)
    assert _snapshot(tmp_path, lake) == before
    _check_contained(lake)
    assert Lake(lake).fsck().ok
    assert Lake(lake).sql("SELECT count(DISTINCT run) FROM frames").fetchall()[0][0] == 2
    assert os.path.islink(extra)
