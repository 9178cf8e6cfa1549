"""The run config models: data, obs, daq, network, daemon, firmware, quabo configs.

Each accepts unknown keys (``extra="allow"``) and redacts secrets when shown
(:class:`~pfflake.models.base.ConfigModel`). Validation rules are pypff's;
the differences are listed in :mod:`pfflake.models`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    IPvAnyAddress,
    ValidationError,
    field_validator,
    model_validator,
)

from .base import ConfigModel, FrozenConfigModel, describe_error

MAX_RUN_TYPE_LENGTH = 14
INVALID_RUN_TYPE_CHARS = [".", "_", " "]
MIN_PULSE_HEIGHT_PE_THRESHOLD = 2.0
MIN_MOVIE_MODE_PE_THRESHOLD = 1.0


# -----------------------------------------------------------------------------
# data_config.json
# -----------------------------------------------------------------------------


class AnyTriggerConfig(FrozenConfigModel):
    """'any_trigger' mode of pulse-height acquisition."""

    group_ph_frames: int = Field(
        0, description="If set to 1, hashpipe will group 4 packets from 4 quabos."
    )


class PulseHeightMode(FrozenConfigModel):
    """Pulse-height (PH) acquisition parameters."""

    pe_threshold: float = Field(..., description="Pulse height threshold in photoelectrons")
    any_trigger: AnyTriggerConfig | None = None
    two_pixel_trigger: int = Field(0, description="If 1, 2-pixel trigger mode is enabled.")
    three_pixel_trigger: int = Field(0, description="If 1, 3-pixel trigger mode is enabled.")


class ImageMode(FrozenConfigModel):
    """Image (movie) mode acquisition parameters."""

    integration_time_usec: int = Field(..., ge=20, description="Integration time in µs")
    pe_threshold: float = Field(..., description="Image mode threshold in photoelectrons")
    quabo_sample_size: Literal[8, 16] = Field(..., description="Bits per sample")

    @field_validator("integration_time_usec")
    @classmethod
    def check_integration_time_divisor(cls, v: int) -> int:
        if 1_000_000 % v != 0:
            raise ValueError(f"integration_time_usec ({v}) must evenly divide 1,000,000 usec.")
        return v


class LongPulseMode(FrozenConfigModel):
    """Long-pulse event detection parameters."""

    octaves: int
    threshold_sigma: list[float]


class FlashParams(FrozenConfigModel):
    """Onboard LED flasher."""

    rate: int = Field(..., ge=0, le=7, description="3-bit value controlling flash rate (0-7)")
    level: int = Field(..., ge=0, le=31, description="Controls DC supply level (0-31)")
    width: int = Field(..., ge=0, le=15, description="Controls pulse width (0-15)")


class StimParams(FrozenConfigModel):
    """Electronic stimulus (test pulse)."""

    rate: int = Field(..., ge=0, le=7, description="Rate from 190 to 24,400 Hz")
    level: int = Field(..., ge=0, le=255)
    mask: list[bool] = Field(..., max_length=4, min_length=4)


class InterleaveState(FrozenConfigModel):
    """One state of an interleaved observing sequence."""

    state_name: str
    duration_seconds: float = Field(..., gt=0.01)
    movie_mode_config: str | None = None
    pulse_height_mode_config: str | None = None

    @model_validator(mode="after")
    def check_at_least_one_mode(self) -> InterleaveState:
        if not self.movie_mode_config and not self.pulse_height_mode_config:
            raise ValueError(
                f"State '{self.state_name}' must have at least one valid mode "
                "(movie or pulse_height)."
            )
        return self


class InterleaveConfig(FrozenConfigModel):
    """Cyclical interleaved observing."""

    enable: bool = Field(False)
    states: list[InterleaveState] = Field([])


def _check_extra(model: type[BaseModel], key: str, value: Any) -> None:
    """Validate an extra key's value against ``model`` with an input-free message."""
    try:
        model.model_validate(value)
    except ValidationError as e:
        raise ValueError(f"invalid '{key}': {describe_error(e)}") from None


class DataConfig(ConfigModel):
    """Acquisition parameters (data_config.json).

    Extra ``image_*`` / ``pulse_height_*`` keys (interleave modes) are checked
    against :class:`ImageMode` / :class:`PulseHeightMode` and kept as dicts.
    """

    run_type: str = Field(..., max_length=MAX_RUN_TYPE_LENGTH)
    detector_overvoltage: Literal[2, 3] | None = None
    gain: int | None = None
    max_file_size_mb: int | None = Field(None, gt=0)
    image: ImageMode | None = None
    pulse_height: PulseHeightMode | None = None
    interleave: InterleaveConfig | None = None
    stim_params: StimParams | None = None
    flash_params: FlashParams | None = None
    xfr_bwlimit: int | None = Field(None, gt=0)

    @field_validator("run_type")
    @classmethod
    def validate_run_type(cls, v: str) -> str:
        if any(ch in INVALID_RUN_TYPE_CHARS for ch in v):
            raise ValueError(
                f"Invalid run_type: '{v}' contains at least one invalid character: "
                f"{INVALID_RUN_TYPE_CHARS}"
            )
        return v

    @model_validator(mode="after")
    def validate_dynamic_modes(self) -> DataConfig:
        for key, val in (self.model_extra or {}).items():
            if key.startswith("image_"):
                _check_extra(ImageMode, key, val)
            elif key.startswith("pulse_height_"):
                _check_extra(PulseHeightMode, key, val)
        return self


# -----------------------------------------------------------------------------
# obs_config.json
# -----------------------------------------------------------------------------


class WpsConfig(FrozenConfigModel):
    """A web power switch; ``url`` usually carries ``user:password``."""

    url: str
    quabo_socket: int


class ObsModuleConfig(ConfigModel):
    """One module of a dome."""

    mobo_serialno: str
    quabo_version: str | list[str]
    ip_addr: IPvAnyAddress | str
    wps: str | None = None
    ups: str | None = None
    timing_mode: str | None = Field("wr", pattern="^(wr|gnss)$")
    azimuth: float | None = Field(None, ge=0, le=360)
    elevation: float | None = Field(None, ge=-90, le=90)
    position_angle: float | None = None
    id: int | None = None
    daq_node: Any | None = None


class ObsDomeConfig(FrozenConfigModel):
    """One dome: site and modules."""

    name: str
    obslat: float = Field(..., ge=-90, le=90)
    obslon: float = Field(..., ge=-180, le=180)
    obsalt: float
    modules: list[ObsModuleConfig]
    num: int | None = None


class ObsConfig(ConfigModel):
    """Observatory setup and device mapping (obs_config.json).

    ``wps*`` keys stay plain dicts (as in pypff) after a check against
    :class:`WpsConfig`; their URLs are redacted whenever the model is shown.
    """

    name: str
    comment: str | None = None
    wr_ip_addr: IPvAnyAddress | str | None = None
    dome_controller_ip_addr: IPvAnyAddress | str | None = None
    gps_port: str | None = Field("/dev/ttyUSB0")
    detector_overvoltage: int | None = None
    domes: list[ObsDomeConfig]

    @model_validator(mode="after")
    def validate_wps_extras(self) -> ObsConfig:
        for key, val in (self.model_extra or {}).items():
            if key.startswith("wps"):
                _check_extra(WpsConfig, key, val)
        return self


# -----------------------------------------------------------------------------
# daq_config.json, network_config.json, daemons, firmware
# -----------------------------------------------------------------------------


class PortForwarding(FrozenConfigModel):
    """Port-forwarding through a gateway."""

    status: bool = Field(False)
    gw_ip: IPvAnyAddress | str
    reboot_port: list[int | None] | None = Field(None)
    cmd_port: list[int | None] | None = Field(None)
    port: int | None = None
    grpc_port: int = Field(50051, ge=1, le=65535)


class DaqNode(ConfigModel):
    """One DAQ node. ``module_ids`` ("0-255", "1,2", 3 or a list) becomes a list."""

    username: str
    data_dir: str
    ip_addr: IPvAnyAddress | str
    module_ids: list[int] | str | int
    bindhost: str | None = Field("0.0.0.0")
    port_forwarding: PortForwarding | None = None

    @field_validator("module_ids", mode="after")
    @classmethod
    def parse_module_ids(cls, v: int | str | list[int]) -> list[int]:
        if isinstance(v, list):
            return v
        if isinstance(v, int):
            return [v]
        if re.match(r"^\d+\-\d+$", v):
            start, end = map(int, v.split("-"))
            return list(range(start, end + 1))
        if "," in v:
            return [int(x.strip()) for x in v.split(",")]
        if v.isdigit():
            return [int(v)]
        return []


class DaqConfig(FrozenConfigModel):
    """DAQ nodes and storage (daq_config.json)."""

    comment: str | None = None
    head_node_data_dir: str
    head_node_ip_addr: IPvAnyAddress | str
    head_node_container: bool | None = Field(False)
    daq_node_module_limit: int | None = Field(4)
    daq_nodes: list[DaqNode]


class NetworkModule(FrozenConfigModel):
    ip_addr: IPvAnyAddress | str
    port_forwarding: PortForwarding


class NetworkDaqNode(FrozenConfigModel):
    ip_addr: IPvAnyAddress | str
    port_forwarding: PortForwarding


class NetworkConfig(FrozenConfigModel):
    """Gateways in front of modules and DAQ nodes (network_config.json)."""

    modules: list[NetworkModule] = Field(default_factory=list)
    daq_nodes: list[NetworkDaqNode] = Field(default_factory=list)


class Daemons(ConfigModel):
    """Daemon name -> settings; free-form."""


class DaemonConfig(FrozenConfigModel):
    daemons: Daemons
    permanent_daemons: Daemons | None = None


class FirmwareConfig(ConfigModel):
    """Firmware image names (firmware_config.json)."""

    qfp: str | None = None
    bga: str | None = None
    gold: str | None = None


# -----------------------------------------------------------------------------
# quabo_uids.json, quabo_config_*.json, quabo_ph_baseline.json
# -----------------------------------------------------------------------------


class QuaboUidEntry(FrozenConfigModel):
    uid: str


class QuaboUidModule(ConfigModel):
    ip_addr: IPvAnyAddress | str
    quabos: list[QuaboUidEntry] = Field(..., min_length=4, max_length=4)


class QuaboUidDome(FrozenConfigModel):
    modules: list[QuaboUidModule]


class QuaboUids(FrozenConfigModel):
    """Quabo serial numbers per module (quabo_uids.json)."""

    domes: list[QuaboUidDome]


def parse_csv_ints(v: Any) -> list[int]:
    """``"1, 2,0x3"`` -> ``[1, 2, 3]``; non-strings pass through unchanged."""
    if isinstance(v, str):
        return [int(p, 16) if p.startswith("0x") else int(p) for p in map(str.strip, v.split(","))]
    return v


def _register_value(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    try:
        if "," in v:
            return parse_csv_ints(v)
        if v.startswith("0x"):
            return int(v, 16)
        if v.lstrip("-").isdigit():
            return int(v)
    except ValueError:
        pass
    return v


class QuaboConfig(ConfigModel):
    """Quabo register settings (quabo_config_<ip>.json).

    Like pypff, ``"1,2,3"`` strings become int lists, ``"0x.."`` and decimal
    strings become ints. Unlike pypff, a string that does not parse stays a
    string instead of failing the whole file, and the input dict is not mutated.
    """

    DAC1: str | list[int] | None = None
    DAC2: str | list[int] | None = None
    GAIN0: str | list[int] | None = None

    @model_validator(mode="before")
    @classmethod
    def handle_csv_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {k: _register_value(v) for k, v in data.items()}


class QuaboPhBaseline(FrozenConfigModel):
    """Pulse-height baseline of one quabo: 256 pixel coefficients."""

    uid: str
    coefs: list[int] = Field(..., min_length=256, max_length=256)


class PhBaselineConfig(FrozenConfigModel):
    """Pulse-height baseline calibration (quabo_ph_baseline.json)."""

    date: str
    quabos: list[QuaboPhBaseline]
