"""Reading config files: which model fits a file, and the run's whole set.

Errors are :class:`~pfflake.errors.ConfigError` with secrets scrubbed; skipped
files are logged on the ``pfflake.models`` logger.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from ..redact import scrub_message, secret_values
from .base import ConfigModel, RawConfig, describe_error
from .configs import (
    DaqConfig,
    DataConfig,
    FirmwareConfig,
    NetworkConfig,
    ObsConfig,
    PhBaselineConfig,
    QuaboConfig,
    QuaboUids,
)

# The logger users and tests filter on: the name of the module these functions came from.
logger = logging.getLogger("pfflake.models")


#: File stem -> model, as pypff's ``PanosetiRun._load_configs``.
CONFIG_MODELS: dict[str, type[ConfigModel]] = {
    "data_config": DataConfig,
    "obs_config": ObsConfig,
    "daq_config": DaqConfig,
    "quabo_ph_baseline": PhBaselineConfig,
    "ph_baseline_config": PhBaselineConfig,
    "network_config": NetworkConfig,
    "quabo_uids": QuaboUids,
    "firmware_config": FirmwareConfig,
}


def config_model_for(stem: str) -> type[ConfigModel]:
    """The model for a config file stem; :class:`RawConfig` when none fits."""
    if stem in CONFIG_MODELS:
        return CONFIG_MODELS[stem]
    return QuaboConfig if stem.startswith("quabo_config") else RawConfig


def _read(path: Path) -> Any:
    text = path.read_bytes().decode("utf-8")
    if path.suffix == ".toml":
        return tomllib.loads(text)
    return json.loads(text)


def _decode_problem(e: Exception) -> str:
    """Position-only description of a decode error (never the offending text)."""
    if isinstance(e, UnicodeDecodeError):
        return f"bytes are not UTF-8 at byte offset {e.start}"
    return str(e)


def load_config(
    path: str | os.PathLike[str], model: type[ConfigModel] | None = None
) -> ConfigModel:
    """Read and validate one ``.json`` or ``.toml`` config file.

    The model comes from the file stem (:func:`config_model_for`) unless
    ``model`` is given. Raises :class:`ConfigError` (a ``ValueError``) for
    undecodable text, bad JSON/TOML, a top level that is not an object, or a
    validation failure; ``OSError`` propagates. Secrets are scrubbed from the
    message and the original exception is not chained (pydantic errors can
    carry input values).
    """
    path = Path(path)
    cls = model or config_model_for(path.stem)
    # Errors are raised outside the except blocks so that no exception holding
    # the document (JSONDecodeError.doc, pydantic input values) rides along
    # as __context__.
    problem: str | None = None
    try:
        data = _read(path)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        problem = f"not valid {path.suffix.lstrip('.').upper()}: {_decode_problem(e)}"
    if problem is not None:
        raise ConfigError(problem, path=path)
    if not isinstance(data, dict):
        raise ConfigError(f"top level is a {type(data).__name__}, expected an object", path=path)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problem = f"invalid {cls.__name__}: {describe_error(e)}"
    raise ConfigError(scrub_message(problem, secret_values(data)), path=path)


def load_configs(run_dir: str | os.PathLike[str]) -> dict[str, ConfigModel]:
    """Every ``*.json`` (but ``dp_manifest*``) and ``*.toml`` config of a run, by stem.

    Files that fail to load are skipped with a warning on this module's
    logger (message without secrets). If ``x.json`` and ``x.toml`` both exist
    the ``.toml`` wins, as in pypff.
    """
    run_dir = Path(run_dir)
    paths = sorted(p for p in run_dir.glob("*.json") if not p.name.startswith("dp_manifest"))
    paths += sorted(run_dir.glob("*.toml"))
    configs: dict[str, ConfigModel] = {}
    for path in paths:
        try:
            configs[path.stem] = load_config(path)
        except (ConfigError, OSError) as e:
            logger.warning("skipping config %s: %s", path.name, e)
    return configs
