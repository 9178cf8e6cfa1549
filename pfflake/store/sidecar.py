"""The ``<run>.panoseti-meta/`` sidecar: redacted copies of a run's configs, logs,
manifests, sentinels and hk.pff (rules in :mod:`pfflake.redact`)."""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from .._version import __version__
from ..redact import find_secrets, redact, redact_free_text, removed_strings, scrub_bytes
from ..run import PanosetiRun
from .layout import replace_target, staging_path

logger = logging.getLogger(__name__)


# -----------------------------------------------------------------------------
# Sidecar bundle (redacted copies)
# -----------------------------------------------------------------------------

_SIDECAR_GLOBS = (
    ("*.json", "configs"),
    ("*.toml", "configs"),
    ("*.log", "logs"),
    ("*.txt", "logs"),
    ("hp_stdout_*", "logs"),
    ("dp_manifest*", "manifests"),
)
_SENTINELS = ("collect_complete", "run_complete", "recording_ended")


def _config_copy(path: Path, secrets: set[str]) -> bytes | None:
    """A config file with its secrets replaced (raw bytes when it holds none); adds the
    removed values to ``secrets``. ``None`` when the result cannot be shown to be clean."""
    import tomllib

    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="surrogateescape")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError:  # unparseable: rule-based text redaction only
        return redact_free_text(text, secrets).encode("utf-8", errors="surrogateescape")
    if not find_secrets(data):
        return raw
    removed_strings(data, redact(data), secrets)
    if path.suffix == ".json":
        return (json.dumps(redact(data), indent=4) + "\n").encode()
    out = redact_free_text(text, secrets)
    try:
        if not find_secrets(tomllib.loads(out)):
            return out.encode("utf-8", errors="surrogateescape")
    except ValueError:
        pass
    return None


def _copy_scrubbed(src: Path, dst: Path, secrets: set[str], *, text: bool = True) -> None:
    data = src.read_bytes()
    if text:
        s = redact_free_text(data.decode("utf-8", errors="surrogateescape"), secrets)
        data = s.encode("utf-8", errors="surrogateescape")
    else:  # hk.pff is data: only the configs' known secret values are removed
        data = scrub_bytes(data, secrets)
    dst.write_bytes(data)
    shutil.copystat(src, dst)


def write_sidecar(
    run: PanosetiRun,
    meta_dir: str | os.PathLike[str],
    zarr_stores: Iterable[Path] = (),
    *,
    overwrite: bool = False,
) -> Path:
    """``<run>.panoseti-meta/``: pypff's bundle, with every credential removed.

    JSON configs that hold secrets are rewritten redacted (others are copied
    byte for byte); logs, manifests, sentinels and TOML get URL passwords and
    ``secret=value`` pairs replaced, plus every secret value (>= 6 chars)
    found in the configs; hk.pff gets only the latter. Built under a
    temporary name and renamed into place.
    """
    meta_dir = Path(meta_dir)
    if meta_dir.exists() and not overwrite:
        raise FileExistsError(f"{meta_dir} exists; pass overwrite=True to replace it")
    staging = staging_path(meta_dir)
    try:
        build_sidecar(run, staging, [Path(s).name for s in zarr_stores])
        replace_target(staging, meta_dir, overwrite)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return meta_dir


def build_sidecar(run: PanosetiRun, staging: Path, store_names: list[str]) -> None:
    run_dir = run.run_dir
    secrets: set[str] = set()
    configs: dict[str, bytes | None] = {}
    for f in sorted(run_dir.glob("*.json")) + sorted(run_dir.glob("*.toml")):
        if f.is_file():
            configs[f.name] = _config_copy(f, secrets)
    skipped = sorted(name for name, data in configs.items() if data is None)
    for name in skipped:
        logger.warning("%s: secrets could not be removed reliably; not copied", name)
    for pattern, sub in _SIDECAR_GLOBS:
        (staging / sub).mkdir(parents=True, exist_ok=True)
        for f in sorted(run_dir.glob(pattern)):
            if not f.is_file():
                continue
            dst = staging / sub / f.name
            if sub == "configs" and f.name in configs:
                data = configs[f.name]
                if data is not None:
                    dst.write_bytes(data)
                    shutil.copystat(f, dst)
            else:
                _copy_scrubbed(f, dst, secrets)
    (staging / "sentinels").mkdir(exist_ok=True)
    for name in _SENTINELS:
        if (run_dir / name).is_file():
            _copy_scrubbed(run_dir / name, staging / "sentinels" / name, secrets)
    if run.hk_path.is_file():
        _copy_scrubbed(run.hk_path, staging / "hk.pff", secrets, text=False)
    manifest = {
        "panoseti_meta_version": "1.0",
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(),
        "source_run_dir": str(run_dir),
        "zarr_stores": store_names,
        "created_by": f"pfflake {__version__}",
        "redacted": True,
        "not_copied": skipped,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))


__all__ = ["build_sidecar", "write_sidecar"]
