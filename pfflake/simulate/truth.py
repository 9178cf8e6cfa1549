"""What a simulated run holds and what a correct reader must make of it.

:class:`BrightEvent` is an input of the synthesis; :class:`SimulatedStream`
and :class:`SimulatedRun` carry the truth (times, flags, files) the tests
compare a reader's output with. Import them from :mod:`pfflake.simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..products import DataProduct, get_product

DEFAULT_START = datetime(2024, 7, 1, 5, 0, 0, tzinfo=UTC)
#: Credentials written into the simulated configs; redacted output must not contain them.
SIM_SECRETS = ("s3cr3t-sim", "wr-s3cr3t-sim")


@dataclass(frozen=True)
class BrightEvent:
    """A Gaussian blob added to one frame index of the selected streams.

    ``modules``/``products`` ``None`` mean all (so one event is coincident
    across modules at the same true time). ``amplitude`` is the peak in raw
    pixel units above the sky (``None``: a product default); ``center`` is
    ``(row, col)`` in pixels (``None``: a position drawn from the frame index).
    """

    frame: int
    modules: tuple[int, ...] | None = None
    products: tuple[str, ...] | None = None
    amplitude: float | None = None
    sigma_px: float = 1.5
    center: tuple[float, float] | None = None

    def applies_to(self, product: str, module: int) -> bool:
        return (self.modules is None or module in self.modules) and (
            self.products is None or product in self.products
        )


@dataclass
class SimulatedStream:
    """One (data product, module) stream and what a correct reader must make of it.

    ``true_unix_t_ns``: the WR time (int64 ns) of the packet the timestamp
    rule uses (module frames: the first quabo present). ``expected_unix_t_ns``
    equals it except on desynchronised frames, where the rule keeps the host
    second, and on frames with no quabo at all (0). ``expected_flags`` are the
    quality bits (``QUALITY_*``). A truncated tail frame is not counted.
    """

    data_product: str
    module: int
    files: list[Path]
    true_unix_t_ns: np.ndarray
    expected_unix_t_ns: np.ndarray
    expected_flags: np.ndarray
    event_frames: np.ndarray
    truncated_tail_bytes: int = 0
    fixed_width: bool = True

    @property
    def product(self) -> DataProduct:
        return get_product(self.data_product)

    @property
    def stream(self) -> str:
        """pypff's product key, e.g. ``dp_img16.bpp_2.module_1``."""
        bpp = self.product.bytes_per_pixel
        return f"dp_{self.data_product}.bpp_{bpp}.module_{self.module}"

    @property
    def n_frames(self) -> int:
        return len(self.true_unix_t_ns)

    @property
    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


@dataclass
class SimulatedRun:
    """A simulated ``.pffd`` run directory and its truth."""

    path: Path
    start: datetime
    streams: dict[str, SimulatedStream]
    hk_path: Path | None = None
    hk_records: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    config_paths: dict[str, Path] = field(default_factory=dict)
    secrets: tuple[str, ...] = SIM_SECRETS

    def stream(self, data_product: str, module: int) -> SimulatedStream:
        product = get_product(data_product)
        key = f"dp_{product.name}.bpp_{product.bytes_per_pixel}.module_{module}"
        return self.streams[key]

    @property
    def files(self) -> dict[str, list[Path]]:
        return {key: s.files for key, s in self.streams.items()}
