"""What the reader reports about files and sequences: plain records, built without raising.

:class:`Damage` is one stretch of a file that holds no intact frame,
:class:`FileInfo` what :meth:`pfflake.file.PFFFile.info` found, and
:class:`SequenceInfo` what :meth:`pfflake.sequence.PFFSequence.info` found.
``pfflake.file`` and ``pfflake.sequence`` re-export them (the same classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Damage:
    """One stretch of a file that holds no intact frame."""

    offset: int
    length: int
    frame: int | None
    reason: str


@dataclass
class FileInfo:
    """What :meth:`PFFFile.info` found; built without raising."""

    path: Path
    size: int
    frames: int = 0
    layout: str = "unknown"
    frame_size: int | None = None
    header_size: int | None = None
    truncated_tail_bytes: int = 0
    damage: list[Damage] = field(default_factory=list)
    error: str | None = None
    #: set when the file's header kind is not its product's usual one (read as the file has it)
    header_note: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.damage and not self.truncated_tail_bytes


@dataclass
class SequenceInfo:
    """Summary of a sequence; built without raising."""

    name: str
    data_product: str | None
    module: int | None
    frames: int
    files: list[FileInfo] = field(default_factory=list)
    first_unix_t_ns: int | None = None
    last_unix_t_ns: int | None = None
    quality_counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(f.ok for f in self.files)


def no_frames_reason(info: FileInfo) -> str:
    """Why a file holds no frame: empty, shorter than one frame, or not PFF data at all."""
    if info.size == 0:
        return "empty file (0 bytes)"
    if info.truncated_tail_bytes >= info.size:
        return f"holds no whole frame: {info.size} bytes, cut short inside frame 0"
    return f"not a PFF file: no frame header ('{{' ... blank line ... '*') in its {info.size} bytes"

