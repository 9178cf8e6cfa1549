"""PanosetiRun: a run directory (``.pffd``): its streams, configs, logs and housekeeping.

Same API as pypff's ``PanosetiRun``. Files whose names pfflake cannot read
(unknown product, malformed name) are not guessed at: they are left out of
:meth:`PanosetiRun.list_products`, logged, and listed by :meth:`info`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PFFError
from .file import no_frames_reason
from .paths import HK_FILE_NAME, RunName, parse_pff_name, parse_run_name
from .sequence import PFFSequence, SequenceInfo, sequence_info

logger = logging.getLogger(__name__)


class EmptyProductError(PFFError, KeyError):
    """A stream's files hold no whole frame (empty, cut short inside frame 0, not PFF data).

    Also a ``KeyError``, which :meth:`PanosetiRun.get_product` raised before."""

    __str__ = Exception.__str__


@dataclass
class RunInfo:
    """Summary of a run directory; built without raising."""

    path: Path
    name: RunName
    products: list[SequenceInfo] = field(default_factory=list)
    skipped_files: dict[str, str] = field(default_factory=dict)
    configs: list[str] = field(default_factory=list)
    hk_records: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped_files and all(p.ok for p in self.products)


class PanosetiRun:
    """One observing run directory.

    ``strict`` is passed to every :class:`PFFSequence` (``False`` skips
    damaged frames instead of raising).
    """

    def __init__(self, run_dir: str | os.PathLike, *, strict: bool = True) -> None:
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"run directory not found: {self.run_dir}")
        self.strict = strict
        self.run_name = parse_run_name(self.run_dir)
        self.products: dict[str, PFFSequence] = {}
        self.skipped_files: dict[str, str] = {}
        #: streams whose files hold no whole frame -> why (listed by info(), 0 frames)
        self.empty_products: dict[str, str] = {}
        self._streams: dict[str, list[Path]] = {}
        self._configs: dict[str, Any] | None = None
        self._metadata: dict[str, list[dict[str, Any]]] | None = None
        self._manifests: dict[str, str] | None = None
        self._hk: dict[str, dict[str, np.ndarray]] | None = None
        self._scan()

    def _scan(self) -> None:
        for path in sorted(self.run_dir.glob("*.pff")):
            if path.name == HK_FILE_NAME or not path.is_file():
                continue
            try:
                name = parse_pff_name(path)
            except PFFError as e:
                self.skipped_files[path.name] = e.reason
                logger.warning("skipping %s: %s", path.name, e.reason)
                continue
            self._streams.setdefault(name.stream, []).append(path)
        for stream, paths in self._streams.items():
            if all(p.stat().st_size == 0 for p in paths):
                self.empty_products[stream] = f"file {paths[0]}: empty file (0 bytes)"
                continue
            try:
                seq = PFFSequence(paths, strict=self.strict)
            except (PFFError, OSError) as e:
                if self.strict:
                    raise
                for p in paths:
                    self.skipped_files[p.name] = str(e)
                continue
            if len(seq):
                self.products[stream] = seq
            else:
                why = [f"file {f.path}: {no_frames_reason(f)}" for f in seq.info().files]
                self.empty_products[stream] = "; ".join(why) or "no frames"
                seq.close()

    # -- products ---------------------------------------------------------------

    def list_products(self) -> list[str]:
        """Stream names (``dp_img16.bpp_2.module_1``), sorted."""
        return sorted(self.products)

    def get_product(self, product_name: str) -> PFFSequence:
        if product_name in self.empty_products:
            raise EmptyProductError(
                f"stream {product_name} holds no frames: {self.empty_products[product_name]}",
                path=self.run_dir,
            )
        if product_name not in self.products:
            raise KeyError(f"Product '{product_name}' not found. Available: {self.list_products()}")
        return self.products[product_name]

    def close(self) -> None:
        for seq in self.products.values():
            seq.close()

    def __enter__(self) -> PanosetiRun:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- configs, logs, metadata ------------------------------------------------

    @property
    def configs(self) -> dict[str, Any]:
        """Parsed configs by file stem (Pydantic models; secrets redacted in dumps)."""
        if self._configs is None:
            from .models import load_configs

            self._configs = load_configs(self.run_dir)
        return self._configs

    def get_config(self, name: str) -> Any:
        """A config by name (``obs_config`` or ``obs_config.json``), or ``None``."""
        return self.configs.get(name.removesuffix(".json").removesuffix(".toml"))

    @property
    def metadata(self) -> dict[str, list[dict[str, Any]]]:
        if self._metadata is None:
            self._metadata = {}
            for f in sorted(self.run_dir.glob("*.jsonl")):
                try:
                    rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
                except (OSError, ValueError) as e:
                    logger.warning("skipping %s: %s", f.name, type(e).__name__)
                    continue
                self._metadata[f.name] = rows
        return self._metadata

    def get_metadata_log(self, name: str) -> list[dict[str, Any]]:
        return self.metadata.get(name, [])

    @property
    def manifests(self) -> dict[str, str]:
        if self._manifests is None:
            self._manifests = {}
            for f in sorted(self.run_dir.glob("dp_manifest*")):
                try:
                    self._manifests[f.name] = f.read_text()
                except OSError as e:
                    logger.warning("skipping %s: %s", f.name, e)
        return self._manifests

    def get_manifest(self, name: str) -> str:
        return self.manifests.get(name, "")

    def list_logs(self) -> list[str]:
        return sorted(
            f.name
            for pattern in ("*.log", "*.txt", "hp_stdout_*")
            for f in self.run_dir.glob(pattern)
            if not f.name.startswith("dp_manifest")
        )

    def get_log(self, name: str) -> str:
        path = self.run_dir / Path(name).name
        if not path.is_file():
            raise FileNotFoundError(f"Log '{name}' not found in {self.run_dir}")
        return path.read_text(errors="replace")

    # -- housekeeping -----------------------------------------------------------

    @property
    def hk_path(self) -> Path:
        return self.run_dir / HK_FILE_NAME

    def get_hk(self) -> dict[str, dict[str, np.ndarray]]:
        """Housekeeping as ``{device: {field: array}}`` (pypff's shape; TEMP1 -> DET_TEMP)."""
        if self._hk is None:
            from .hk import read_hk

            self._hk = read_hk(self.hk_path) if self.hk_path.exists() else {}
        return self._hk

    # -- reporting --------------------------------------------------------------

    def info(self) -> RunInfo:
        """Products, damage, skipped files and configs; never raises."""
        info = RunInfo(self.run_dir, self.run_name, skipped_files=dict(self.skipped_files))
        try:
            for stream in sorted(self._streams):
                seq = self.products.get(stream)
                info.products.append(seq.info() if seq else sequence_info(self._streams[stream]))
            info.configs = sorted(self.configs)
            hk = self.get_hk()
            info.hk_records = max((len(v) for d in hk.values() for v in d.values()), default=0)
        except Exception as e:  # info() promises not to raise
            info.error = f"{type(e).__name__}: {e}"
        return info

    def show(self, details: bool = False) -> None:
        """Print the run's structure as a tree (rich)."""
        from rich.console import Console
        from rich.tree import Tree

        tree = Tree(f"[bold]Run: {self.run_dir.resolve().name}[/]")
        if self.configs or self.metadata:
            branch = tree.add("Configurations & Metadata")
            for k in sorted(self.configs):
                branch.add(f"[cyan]{k}[/]")
            for k in sorted(self.metadata):
                branch.add(f"[blue]{k}[/]")
        if self.manifests:
            branch = tree.add("Data Manifests")
            for k in sorted(self.manifests):
                branch.add(f"[green]{k}[/]")
        logs = self.list_logs()
        if logs:
            branch = tree.add("Logs")
            for name in logs:
                branch.add(f"[magenta]{name}[/]")
        if self.products:
            branch = tree.add("Data Products")
            for name, seq in sorted(self.products.items()):
                node = branch.add(f"[bold green]{name}[/] ({len(seq):,} frames)")
                if details:
                    for fp in seq.file_paths:
                        node.add(f"[dim]{fp.name} ({fp.stat().st_size / 1024**2:.1f} MB)[/]")
        if self.skipped_files:
            branch = tree.add("[red]Skipped files[/]")
            for name, why in sorted(self.skipped_files.items()):
                branch.add(f"{name}: {why}")
        if self.hk_path.exists():
            size = self.hk_path.stat().st_size / 1024
            tree.add(f"[bold]Housekeeping:[/] {HK_FILE_NAME} ({size:.1f} KB)")
        Console().print(tree)
