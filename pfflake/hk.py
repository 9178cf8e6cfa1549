"""Housekeeping files (``hk.pff``): device telemetry as arrays or as a long table.

An ``hk.pff`` holds text blocks ``{"<DEVICE>": {"FIELD": "value", ...}}``
separated by blank lines; values are strings that usually hold numbers, and
``Computer_UTC`` is the host's UNIX time as a decimal string.

Two views:

* :func:`read_hk` -- pypff's ``get_hk()``: ``{device: {field: array}}``, lenient.
* :func:`iter_hk_records` / :func:`hk_table` -- one row per (block, device,
  field) for a data lake, with ``unix_t_ns`` parsed exactly from
  ``Computer_UTC``.

Field names are canonical everywhere: ``TEMP1`` -> ``DET_TEMP`` (detector),
``TEMP2`` -> ``FPGA_TEMP``.

Damage. A block is *malformed* when it is not UTF-8 JSON, its top level is not
an object, a device's value is not an object, or its ``Computer_UTC`` is not a
decimal number. A malformed **last** block without its closing blank line is
the normal result of recording stopping mid-write: it is dropped with a
:class:`~pfflake.file.PFFWarning` in every mode. Any other malformed block
raises :class:`~pfflake.errors.CorruptHeaderError` (file, block index as
``frame``, byte offset) when ``strict=True``; with ``strict=False`` it is
skipped and described in the caller's ``skipped`` list. Block contents are
never logged or put in messages.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from .errors import CorruptHeaderError
from .file import PFFWarning

__all__ = [
    "HK_FIELD_NAMES",
    "HK_SCHEMA",
    "HK_SENTINELS",
    "HKRecord",
    "SkippedBlock",
    "hk_table",
    "iter_hk_blocks",
    "iter_hk_records",
    "parse_utc_ns",
    "read_hk",
]

logger = logging.getLogger(__name__)

#: Raw hk field name -> canonical name (same renaming as pypff).
HK_FIELD_NAMES: dict[str, str] = {"TEMP1": "DET_TEMP", "TEMP2": "FPGA_TEMP"}
#: Readings that mean "no reading", not a value: canonical field -> sentinel values.
#: DET_TEMP is the detector ADC count x 0.25 deg C; 511.75 is raw 2047, the 11-bit
#: all-ones the quabo reports when the sensor was not read. In :func:`hk_table` /
#: :func:`iter_hk_records` (the lake) such a reading has ``value`` null; its ``text``
#: keeps what was written. :func:`read_hk` keeps pypff's arrays unchanged.
HK_SENTINELS: dict[str, frozenset[float]] = {"DET_TEMP": frozenset({511.75})}
#: The field that carries a block's time; it becomes ``unix_t_ns``, not a row.
TIME_FIELD = "Computer_UTC"

#: Long-form housekeeping table (see :func:`hk_table`).
HK_SCHEMA = pa.schema(
    [
        pa.field("unix_t_ns", pa.int64()),
        pa.field("device", pa.string(), nullable=False),
        pa.field("field", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("text", pa.string(), nullable=False),
    ]
)

_NS_PER_S = 1_000_000_000
_UTC_RE = re.compile(r"\s*([+-]?)(\d+)(?:\.(\d*))?\s*")
_NUMBER_RE = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


class HKRecord(NamedTuple):
    """One housekeeping value: a row of :func:`hk_table`."""

    unix_t_ns: int | None
    device: str
    field: str
    value: float | None
    text: str


@dataclass(frozen=True)
class SkippedBlock:
    """A block that was not read: where it is and why (never its content)."""

    index: int
    offset: int
    reason: str


class _Malformed(ValueError):
    pass


def parse_utc_ns(text: str | int | float) -> int:
    """Decimal UNIX seconds -> int ns, exactly (no float in between).

    ``"1754975261.080837"`` -> ``1754975261080837000``. Digits past the 9th
    decimal are truncated toward zero. A JSON number that arrived as a float
    is read from its shortest repr, which is the text the writer printed.
    Raises ``ValueError`` when ``text`` is not a plain decimal number.
    """
    if isinstance(text, bool):
        raise ValueError("not a decimal number")
    if isinstance(text, int):
        return text * _NS_PER_S
    if isinstance(text, float):
        text = repr(text)
    m = _UTC_RE.fullmatch(text)
    if m is None:
        raise ValueError("not a decimal number")
    sign, whole, frac = m.groups()
    ns = int(whole) * _NS_PER_S + int((frac or "")[:9].ljust(9, "0"))
    return -ns if sign == "-" else ns


def _blocks(path: Path) -> Iterator[tuple[int, int, bytes, bool]]:
    """``(index, offset, bytes, terminated)`` for every non-blank block, in file order."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            start, size, index = 0, mm.size(), 0
            while start < size:
                end = mm.find(b"\n\n", start)
                stop = size if end == -1 else end
                chunk = mm[start:stop]
                stripped = chunk.lstrip()
                if stripped.strip():
                    offset = start + len(chunk) - len(stripped)
                    yield index, offset, stripped, end != -1
                    index += 1
                start = size if end == -1 else end + 2


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _parse_block(chunk: bytes) -> dict[str, dict[str, Any]]:
    """A block's devices, or :class:`_Malformed` saying what is wrong (no content)."""
    try:
        block = json.loads(chunk.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise _Malformed(f"bytes are not UTF-8 at block byte {e.start}") from None
    except json.JSONDecodeError as e:
        raise _Malformed(f"bad JSON: {e.msg} at block char {e.pos}") from None
    except ValueError as e:
        raise _Malformed(f"bad JSON: {e}") from None
    if not isinstance(block, dict):
        raise _Malformed(f"top level is a {type(block).__name__}, expected an object")
    for device, fields in block.items():
        if not isinstance(fields, dict):
            raise _Malformed(f"device {device!r} holds a {type(fields).__name__}, not an object")
    return block


def _good_blocks(
    path: Path, strict: bool, skipped: list[SkippedBlock] | None, check_time: bool
) -> Iterator[dict[str, dict[str, Any]]]:
    """Parsed blocks; applies the damage policy of the module docstring."""
    n_skipped = 0
    for index, offset, chunk, terminated in _blocks(path):
        try:
            block = _parse_block(chunk)
            if check_time:
                for fields in block.values():
                    if TIME_FIELD in fields:
                        try:
                            parse_utc_ns(fields[TIME_FIELD])
                        except ValueError:
                            raise _Malformed(f"{TIME_FIELD} is not a decimal number") from None
        except _Malformed as e:
            cut_short = not terminated
            reason = f"cut short at end of file ({e})" if cut_short else str(e)
            if cut_short:
                msg = f"{path}: last hk block (byte offset {offset}) cut short; dropped"
                warnings.warn(msg, PFFWarning, stacklevel=4)
            elif strict:
                raise CorruptHeaderError(
                    f"malformed hk block: {e}", path=path, frame=index, offset=offset
                ) from None
            else:
                n_skipped += 1
            if skipped is not None:
                skipped.append(SkippedBlock(index, offset, reason))
            continue
        yield block
    if n_skipped:
        logger.warning("%s: skipped %d malformed hk block(s)", path, n_skipped)


def iter_hk_blocks(
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    skipped: list[SkippedBlock] | None = None,
    check_time: bool = True,
) -> Iterator[dict[str, dict[str, Any]]]:
    """Every well-formed block as parsed, ``{device: {field: value}}``, in file order.

    Field names and values are as written (``TEMP1``, strings): the raw material of
    :func:`read_hk` and :func:`iter_hk_records`, for readers with their own conversion
    (pfflake.pypff.io's legacy ``hkpff``). ``strict``/``skipped``: the damage policy of
    the module docstring; ``check_time=False`` accepts a ``Computer_UTC`` that is not a
    decimal number (pypff never parsed it).
    """
    return _good_blocks(Path(path), strict, skipped, check_time)


def _pypff_value(v: Any) -> Any:
    """pypff's conversion: ``"1.5"`` -> float, ``"15"`` -> int, anything else as is."""
    if isinstance(v, str):
        try:
            return float(v) if "." in v else int(v)
        except ValueError:
            return v
    return v


def read_hk(path: str | os.PathLike[str]) -> dict[str, dict[str, np.ndarray]]:
    """``{device: {field: array}}`` exactly like pypff's ``get_hk()``.

    Numeric strings become int or float arrays (a field mixing numbers and
    text becomes a string array, as ``np.asarray`` decides); ``Computer_UTC``
    is float64 here and so only good to ~0.2 µs -- use :func:`hk_table` for
    exact times. Missing or empty file -> ``{}``. Malformed blocks are skipped
    whole (pypff could keep the devices of a block listed before the broken one).
    """
    path = Path(path)
    if not path.exists():
        return {}
    raw: dict[str, dict[str, list[Any]]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PFFWarning)
        for block in _good_blocks(path, strict=False, skipped=None, check_time=False):
            for device, fields in block.items():
                target = raw.setdefault(device, {})
                for name, value in fields.items():
                    target.setdefault(HK_FIELD_NAMES.get(name, name), []).append(
                        _pypff_value(value)
                    )
    return {dev: {k: np.asarray(vs) for k, vs in fields.items()} for dev, fields in raw.items()}


def _value(v: Any) -> tuple[float | None, str]:
    if isinstance(v, str):
        return (float(v) if _NUMBER_RE.fullmatch(v) else None), v
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v), json.dumps(v)
    return None, json.dumps(v)


def iter_hk_records(
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    skipped: list[SkippedBlock] | None = None,
) -> Iterator[HKRecord]:
    """Every housekeeping value as an :class:`HKRecord`, in file order.

    ``unix_t_ns`` comes from the device's ``Computer_UTC`` (``None`` when the
    device has none); ``Computer_UTC`` itself is not a record. ``value`` is the
    float of a decimal-number string (``"0x1f"``, ``""`` and words give
    ``None``, and so does a sentinel of :data:`HK_SENTINELS` such as DET_TEMP
    511.75); ``text`` is the string as written (JSON text for non-strings).
    ``strict`` and ``skipped``: see the module docstring. Streams through a
    memory map, so it suits long files.
    """
    for block in _good_blocks(Path(path), strict, skipped, check_time=True):
        for device, fields in block.items():
            utc = fields.get(TIME_FIELD)
            t_ns = None if utc is None else parse_utc_ns(utc)
            for name, raw in fields.items():
                if name == TIME_FIELD:
                    continue
                value, text = _value(raw)
                canonical = HK_FIELD_NAMES.get(name, name)
                if value is not None and value in HK_SENTINELS.get(canonical, ()):
                    value = None  # "no reading" (see HK_SENTINELS), never a temperature
                yield HKRecord(t_ns, device, canonical, value, text)


def hk_table(
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    skipped: list[SkippedBlock] | None = None,
) -> pa.Table:
    """Housekeeping in long form with :data:`HK_SCHEMA`: one row per device field.

    Columns ``unix_t_ns`` (int64, exact, null without ``Computer_UTC``),
    ``device``, ``field`` (canonical name), ``value`` (float64 or null),
    ``text`` (raw string). Rows are in file order. Pass a list as ``skipped``
    to learn which blocks were dropped (see the module docstring).
    """
    columns: tuple[list[Any], ...] = ([], [], [], [], [])
    for record in iter_hk_records(path, strict=strict, skipped=skipped):
        for column, item in zip(columns, record, strict=True):
            column.append(item)
    return pa.table(
        [pa.array(col, type=f.type) for col, f in zip(columns, HK_SCHEMA, strict=True)],
        schema=HK_SCHEMA,
    )
