"""Compatibility face: queries over a lake snapshot live in :mod:`pfflake.lake.query`."""

from .errors import FrameNotFoundError, QueryError
from .lake.query import (
    HKCoverageWarning,
    coincidence_sql,
    coincidences,
    examples_dir,
    frames_schema,
    frames_with_hk,
    images,
    images_at,
    light_curve,
    register_views,
    scan,
    sql_ident,
    sql_literal,
    views_dir,
)
from .lake.tables import LATEST_KEYS, SCAN_TABLES, table_schema

__all__ = [
    "LATEST_KEYS",
    "SCAN_TABLES",
    "FrameNotFoundError",
    "HKCoverageWarning",
    "QueryError",
    "coincidence_sql",
    "coincidences",
    "examples_dir",
    "frames_schema",
    "frames_with_hk",
    "images",
    "images_at",
    "light_curve",
    "register_views",
    "scan",
    "sql_ident",
    "sql_literal",
    "table_schema",
    "views_dir",
]
