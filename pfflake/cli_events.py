"""Bodies of the ``pfflake offsets`` and ``pfflake coincidences`` commands.

:mod:`pfflake.cli` declares the options; the work is here, so the command
line stays a thin layer over :mod:`pfflake.timing`, :mod:`pfflake.coincidence`
and :mod:`pfflake.cuts`. Durations on the command line are exact decimals
(``--window-us 0.5`` is 500 ns), never floats.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyarrow as pa

from .console import emit_table
from .timing import modules_list


def decimal_ns(text: str | int, unit_ns: int, option: str) -> int:
    """``"1000"`` us -> 1_000_000 ns, exactly; refuses what is not a whole number of ns."""
    try:
        value = Decimal(str(text)) * unit_ns
    except InvalidOperation:
        raise ValueError(f"{option}: not a decimal number: {text!r}") from None
    if value != value.to_integral_value() or value < 0:
        raise ValueError(f"{option} {text} is not a non-negative whole number of ns")
    return int(value)


def _lake(path: Path):
    from .lake import Lake

    if not path.is_dir():
        raise FileNotFoundError(f"lake not found: {path}")
    return Lake(path)


def _cuts(enabled: bool):
    from .cuts import Cuts

    return Cuts() if enabled else None


def run_offsets(
    lake: Path, reference: int, modules: str, window_us: str, bin_s: str, time_base: str,
    where: str | None, data_product: str | None, cuts: bool, fmt: str, out: Path | None,
) -> pa.Table:
    """``pfflake offsets``: the offsets table, printed or saved (parquet keeps parameters)."""
    table = _lake(lake).time_offsets(
        reference, modules_list(modules), window_ns=decimal_ns(window_us, 1000, "--window-us"),
        bin_ns=decimal_ns(bin_s, 1_000_000_000, "--bin-s"), time_base=time_base, where=where,
        data_product=data_product, cuts=_cuts(cuts),
    )
    emit_table(table, fmt, out)
    return table


def run_coincidences(
    lake: Path, modules: str, window_us: str, min_multiplicity: int, time_base: str,
    offsets: Path | None, reference: int | None, where: str | None, data_product: str | None,
    cuts: bool, rate_bin_s: str | None, fmt: str, out: Path | None,
) -> pa.Table:
    """``pfflake coincidences``: member rows of every group (or, with ``--rate-bin-s``, the
    rate per bin). Offsets come from ``--offsets FILE`` (a saved offsets table) or are
    estimated against ``--reference`` with the default parameters."""
    from .timing import read_offsets

    the_lake = _lake(lake)
    mods = modules_list(modules)
    if offsets is not None and reference is not None:
        raise ValueError("give --offsets FILE or --reference MODULE, not both")
    table_offsets = None
    if offsets is not None:
        table_offsets = read_offsets(offsets)
    elif reference is not None:
        table_offsets = the_lake.time_offsets(
            reference, [m for m in mods if m != reference], time_base=time_base, where=where,
            data_product=data_product, cuts=_cuts(cuts))
    groups = the_lake.coincidence_groups(
        mods, decimal_ns(window_us, 1000, "--window-us"), min_multiplicity=min_multiplicity,
        time_base=time_base, offsets=table_offsets, where=where, data_product=data_product,
        cuts=_cuts(cuts),
    )
    result = groups
    if rate_bin_s is not None:
        result = the_lake.coincidence_rate(groups, decimal_ns(rate_bin_s, 1_000_000_000,
                                                              "--rate-bin-s"))
    emit_table(result, fmt, out)
    return result
