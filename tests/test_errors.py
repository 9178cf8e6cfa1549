"""The one error tree (pfflake.errors): every public exception of the package is under
:class:`PfflakeError`, keeps the builtin it always subclassed, and survives pickling (Dask
and process pools send errors between processes)."""

from __future__ import annotations

import importlib
import pickle
import pkgutil

import pytest

import pfflake
from pfflake import errors as E

# Classes that are not under the root yet, each with its reason (the test fails when a new
# one appears, and when one of these joins the tree so the list can shrink). Empty since
# TimeOverflowError joined the tree (issue 13); keep it empty.
NOT_YET_IN_TREE: set[str] = set()

# (class, builtins it must still be an instance of): what `except ValueError` etc. of a
# user relied on before the tree existed.
BUILTINS = [
    (E.PFFFormatError, (ValueError,)),
    (E.CorruptHeaderError, (ValueError,)),
    (E.CorruptFrameError, (ValueError,)),
    (E.TruncatedFrameError, (EOFError,)),
    (E.UnknownProductError, (ValueError,)),
    (E.FileNameError, (ValueError,)),
    (E.ConfigError, (ValueError,)),
    (E.ZarrLayoutError, (ValueError,)),
    (E.TimeOverflowError, (ValueError,)),
    (E.LakeError, (RuntimeError,)),
    (E.CommitConflict, (RuntimeError,)),
    (E.QueryError, (ValueError,)),
    (E.FrameNotFoundError, (ValueError, LookupError)),
]


def _package_exceptions() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(pfflake.__path__, "pfflake."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseException)
                and not issubclass(obj, Warning)
                and obj.__module__ == info.name
                and not name.startswith("_")
            ):
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_public_exception_is_under_the_root():
    found = _package_exceptions()
    assert "pfflake.errors.LakeError" in found  # the walk reached the package
    outside = {name for name, cls in found.items() if not issubclass(cls, E.PfflakeError)}
    assert outside == NOT_YET_IN_TREE


@pytest.mark.parametrize("cls, builtins", BUILTINS, ids=lambda x: getattr(x, "__name__", ""))
def test_each_class_keeps_its_builtin(cls, builtins):
    assert issubclass(cls, E.PfflakeError)
    for b in builtins:
        assert issubclass(cls, b), (cls, b)


def test_branches():
    assert issubclass(E.CommitConflict, E.LakeError)
    assert issubclass(E.FrameNotFoundError, E.QueryError)
    assert issubclass(E.QueryError, E.LakeError)
    assert issubclass(E.ConfigError, E.PFFError)
    assert not issubclass(E.ZarrLayoutError, E.LakeError)  # convert_run users have no lake
    assert not issubclass(E.LakeError, E.PFFError)


def test_old_homes_are_the_same_classes():
    from pfflake import lake, log, models, query, timestamps, zarr

    assert lake.LakeError is E.LakeError is pfflake.LakeError
    assert log.CommitConflict is E.CommitConflict is pfflake.CommitConflict
    assert query.QueryError is E.QueryError is pfflake.QueryError
    assert query.FrameNotFoundError is E.FrameNotFoundError is pfflake.FrameNotFoundError
    assert zarr.ZarrLayoutError is E.ZarrLayoutError is pfflake.ZarrLayoutError
    assert models.ConfigError is E.ConfigError is pfflake.ConfigError
    assert timestamps.TimeOverflowError is E.TimeOverflowError is pfflake.TimeOverflowError
    assert pfflake.PfflakeError is E.PfflakeError


def _instance(cls):
    if issubclass(cls, E.TimeOverflowError):
        return cls([3, 5], "tv_sec 1e19 out of range")
    if issubclass(cls, E.PFFError):
        return cls("bad bytes", path="/data/x.pff", frame=7, offset=1234)
    return cls("cannot answer that")


@pytest.mark.parametrize(
    "name", sorted(n for n in _package_exceptions() if n not in NOT_YET_IN_TREE)
)
def test_pickles_with_its_fields(name):
    cls = _package_exceptions()[name]
    err = _instance(cls)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == str(err)
    if isinstance(err, E.PFFError):
        assert (back.path, back.frame, back.offset, back.reason) == (
            err.path,
            err.frame,
            err.offset,
            err.reason,
        )
        assert "frame 7" in str(back) and "byte offset 1234" in str(back)
    if isinstance(err, E.TimeOverflowError):
        assert back.rows.dtype == "int64" and back.rows.tolist() == [3, 5]
        assert back.detail == err.detail


def test_catching_the_root_catches_a_lake_error(tmp_path):
    with pytest.raises(pfflake.PfflakeError):
        pfflake.Lake(tmp_path / "no-lake-here").snapshot()


def test_time_overflow_error_crosses_a_process_with_its_rows():
    """A worker process that hits an overflowing time sends the error back pickled (Dask,
    ProcessPoolExecutor); rows, message and notes must survive the trip, and the reader
    modules' import of it from pfflake.timestamps must be the same class."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from pfflake import timestamps

    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing shared
    with (
        ProcessPoolExecutor(1, mp_context=spawn) as pool,
        pytest.raises(E.TimeOverflowError) as info,
    ):
        pool.submit(_overflow_in_worker).result(timeout=120)
    err = info.value
    assert err.__notes__ == ["in worker"]
    assert err.rows.tolist() == [1] and err.rows.dtype == "int64"
    assert "does not fit int64 ns" in str(err) and "tv_sec" in str(err)
    assert isinstance(err, ValueError) and isinstance(err, pfflake.PfflakeError)
    assert timestamps.TimeOverflowError is E.TimeOverflowError


def _overflow_in_worker():
    import numpy as np

    from pfflake.timestamps import unix_t_ns

    ones = np.ones(2, np.int64)
    try:
        unix_t_ns(np.array([1_700_000_000, 10**13]), ones, ones, np.zeros(2, np.int64))
    except Exception as e:
        e.add_note("in worker")
        raise


# Warnings not under PFFWarning yet, each with its reason (the test fails on a new one, and
# when one of these joins so the list can shrink).
WARNINGS_NOT_YET_UNDER_BASE: set[str] = set()


def _package_warnings() -> dict[str, type[Warning]]:
    found = {}
    for info in pkgutil.walk_packages(pfflake.__path__, "pfflake."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if (
                isinstance(obj, type)
                and issubclass(obj, Warning)
                and obj.__module__ == info.name
                and not name.startswith("_")
            ):
                found[f"{info.name}.{name}"] = obj
    return found


def test_warnings_share_one_base():
    found = _package_warnings()
    assert "pfflake.errors.PFFWarning" in found  # defined in errors.py, beside the root
    assert issubclass(E.PFFWarning, UserWarning)
    outside = {name for name, cls in found.items() if not issubclass(cls, E.PFFWarning)}
    assert outside == WARNINGS_NOT_YET_UNDER_BASE


def test_pffwarning_old_homes_are_the_same_class():
    import pfflake.file
    import pfflake.hk

    assert pfflake.PFFWarning is pfflake.file.PFFWarning is pfflake.hk.PFFWarning is E.PFFWarning
