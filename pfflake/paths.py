"""PANOSETI file and run-directory names: parse and format, all known variants.

File: ``start_<ISO time>Z.dp_<dp>.bpp_<bytes>.module_<id>.seqno_<n>[.<key>_<value>...].pff``
with the time's separators ``:``, ``-`` or ``_`` (file systems that forbid ``:``);
as in pypff, only ``dp_`` and ``module_`` are required (see :func:`parse_pff_name`).
Run:  ``obs_<observatory>.start_<ISO time>Z.runtype_<type>.pffd``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .errors import FileNameError
from .products import DataProduct, get_product

_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}[:_-]\d{2}[:_-]\d{2}(?:\.\d+)?"
_FILE_RE = re.compile(rf"^start_(?P<start>{_TIME})Z\.(?P<rest>.+)\.pff$")
_RUN_RE = re.compile(
    rf"^obs_(?P<obs>.+?)\.start_(?P<start>{_TIME})Z\.runtype_(?P<runtype>[^.]+)\.pffd$"
)
_TOKEN_RE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9]*)_(?P<value>.+)$")
# The name as the DAQ writes it, in one match (every open parses its names); any other
# name takes the general token walk, which gives the same answer for this form.
_DAQ_RE = re.compile(
    rf"^start_(?P<start>{_TIME})Z\.dp_(?P<dp>[A-Za-z0-9]+)\.bpp_(?P<bpp>[0-9]+)"
    r"\.module_(?P<module>[0-9]+)\.seqno_(?P<seqno>[0-9]+)\.pff$"
)

HK_FILE_NAME = "hk.pff"


def parse_time(text: str) -> datetime:
    """Parse a name's ISO time (any of the ``:``/``-``/``_`` separator variants) as UTC."""
    date, _, clock = text.partition("T")
    clock = clock.replace("_", ":").replace("-", ":")
    return datetime.fromisoformat(f"{date}T{clock}").replace(tzinfo=UTC)


@dataclass(frozen=True)
class PFFName:
    """The parts of a PFF data file name.

    ``extra`` keeps any further ``key_value`` tokens in order (e.g.
    ``{"debug": "TRUNCATED"}``); they are part of the stream identity.
    """

    start: datetime | None  # None when the name has no (full ISO) start time
    start_text: str | None
    data_product: str
    bpp: int
    module: int
    seqno: int
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def product(self) -> DataProduct:
        return get_product(self.data_product)

    @property
    def stream(self) -> str:
        """pypff's product key: the name without ``start``, ``seqno`` and ``.pff``."""
        parts = [f"dp_{self.data_product}", f"bpp_{self.bpp}", f"module_{self.module}"]
        parts += [f"{k}_{v}" for k, v in self.extra.items()]
        return ".".join(parts)

    def as_meta(self) -> dict[str, str | int]:
        """pypff's ``parse_filename`` dict (``start``, ``dp``, ``bpp``, ``module``, ``seqno``)."""
        meta: dict[str, str | int] = {}
        if self.start_text is not None:
            text = self.start_text
            if self.start is not None and not text.endswith("Z"):
                text += "Z"
            meta["start"] = int(text) if text.isdigit() else text
        meta |= {
            "dp": self.data_product,
            "bpp": self.bpp,
            "module": self.module,
            "seqno": self.seqno,
        }
        for k, v in self.extra.items():
            meta[k] = int(v) if v.isdigit() else v
        return meta


def parse_pff_name(name: str | Path) -> PFFName:
    """Parse a PFF data file name; raise :class:`FileNameError` naming what is wrong.

    Any name ending ``.pff`` that carries ``dp_<product>`` and ``module_<n>``
    is read, as pypff reads them: ``seqno`` (default 0) and ``bpp`` (implied
    by the product) are optional, and so is the start time, which may be a
    full ISO time (``start_<time>Z``, any separator variant) or anything else
    (``start_2024``: :attr:`PFFName.start` is then ``None``). Parts that are
    not ``key_value`` tokens (a ``test.`` prefix) are ignored. Unknown data
    products raise :class:`~pfflake.errors.UnknownProductError`; a ``bpp``
    that contradicts the product, a repeated token or a non-integer
    module/seqno/bpp is an error, not a guess.
    """
    path = name if isinstance(name, Path) else Path(name)  # every open parses its names
    daq = _DAQ_RE.match(path.name)
    if daq is not None:
        return _daq_name(daq, path)
    if not path.name.endswith(".pff") or path.name == HK_FILE_NAME:
        raise FileNameError(
            "not a PFF data file name (expected [start_<time>Z.]dp_<product>[.bpp_<n>]"
            ".module_<id>[.seqno_<n>].pff)",
            path=path,
        )
    m = _FILE_RE.match(path.name)
    start_text: str | None = m["start"] if m else None
    rest = m["rest"] if m else path.name[: -len(".pff")]
    tokens: dict[str, str] = {}
    for token in rest.split("."):
        t = _TOKEN_RE.match(token)
        if not t:
            continue  # a plain word (``test``) or a piece of an odd start time
        if t["key"] in tokens:
            raise FileNameError(f"name token {t['key']!r} appears twice", path=path)
        tokens[t["key"]] = t["value"]
    if m is None and "start" in tokens:
        start_text = tokens.pop("start")
    for required in ("dp", "module"):
        if required not in tokens:
            raise FileNameError(f"name lacks the {required}_<value> token", path=path)
    product = get_product(tokens.pop("dp"))
    try:
        module = int(tokens.pop("module"))
        seqno = int(tokens.pop("seqno", 0))
        bpp = int(tokens.pop("bpp", product.bytes_per_pixel))
    except ValueError as e:
        raise FileNameError(f"non-integer module, seqno or bpp ({e})", path=path) from None
    if bpp != product.bytes_per_pixel:
        raise FileNameError(
            f"bpp_{bpp} contradicts data product {product.name} "
            f"({product.bytes_per_pixel} bytes per pixel)",
            path=path,
        )
    start: datetime | None = None
    if start_text is not None:
        try:
            start = parse_time(start_text.removesuffix("Z"))
        except ValueError as e:
            if m is not None:
                raise FileNameError(f"bad start time {start_text!r}: {e}", path=path) from None
    return PFFName(start, start_text, product.name, bpp, module, seqno, tokens)


def _daq_name(m: re.Match, path: Path) -> PFFName:
    """:func:`parse_pff_name` of a name in the DAQ's own form (no extra tokens)."""
    product = get_product(m["dp"])
    bpp = int(m["bpp"])
    if bpp != product.bytes_per_pixel:
        raise FileNameError(
            f"bpp_{bpp} contradicts data product {product.name} "
            f"({product.bytes_per_pixel} bytes per pixel)",
            path=path,
        )
    text = m["start"]
    try:
        if text[13] == text[16] == ":":  # already ISO 8601: one parse
            try:
                start = datetime.fromisoformat(text + "+00:00")
            except ValueError:
                start = parse_time(text)  # raises, with parse_time's own message
        else:
            start = parse_time(text)
    except ValueError as e:
        raise FileNameError(f"bad start time {text!r}: {e}", path=path) from None
    return PFFName(start, text, product.name, bpp, int(m["module"]), int(m["seqno"]), {})


def format_pff_name(
    start: datetime,
    data_product: str,
    module: int,
    seqno: int,
    *,
    separator: str = ":",
    extra: dict[str, str] | None = None,
) -> str:
    """Format a PFF file name as the DAQ writes it (``separator`` ``-``/``_`` for Windows-safe)."""
    product = get_product(data_product)
    stamp = start.astimezone(UTC).strftime(f"%Y-%m-%dT%H{separator}%M{separator}%S")
    tail = "".join(f".{k}_{v}" for k, v in (extra or {}).items())
    return (
        f"start_{stamp}Z.dp_{product.name}.bpp_{product.bytes_per_pixel}"
        f".module_{module}.seqno_{seqno}{tail}.pff"
    )


@dataclass(frozen=True)
class RunName:
    """The parts of a run directory name; fields are ``None`` for non-standard names."""

    name: str
    observatory: str | None
    start: datetime | None
    run_type: str | None


def parse_run_name(path: str | Path) -> RunName:
    """Parse ``obs_<obs>.start_<time>Z.runtype_<type>.pffd``; never raises.

    Sample and hand-made directories (``example-data``) get ``None`` fields.
    """
    name = Path(path).name
    m = _RUN_RE.match(name)
    if not m:
        return RunName(name, None, None, None)
    try:
        start = parse_time(m["start"])
    except ValueError:
        start = None
    return RunName(name, m["obs"], start, m["runtype"])


def format_run_name(observatory: str, start: datetime, run_type: str) -> str:
    stamp = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"obs_{observatory}.start_{stamp}Z.runtype_{run_type}.pffd"
