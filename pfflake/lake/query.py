"""Compatibility face: the query layer is :mod:`pfflake.lake.views` (DuckDB views, Polars
scans, :class:`LakeView`), :mod:`pfflake.lake.images` (query results -> images) and
:mod:`pfflake.lake.analysis` (frames with hk, coincidences, light curves).

Every name this module had is still here and is the same object as in its new home.
"""

from ..errors import FrameNotFoundError, QueryError
from .analysis import (
    HKCoverageWarning,
    coincidence_sql,
    coincidences,
    frames_with_hk,
    light_curve,
)
from .images import frame_keys, images, images_at, locate
from .views import (
    LakeView,
    examples_dir,
    frames_schema,
    register_views,
    scan,
    sql_ident,
    sql_list,
    sql_literal,
    views_dir,
)

__all__ = [
    "FrameNotFoundError",
    "HKCoverageWarning",
    "LakeView",
    "QueryError",
    "coincidence_sql",
    "coincidences",
    "examples_dir",
    "frame_keys",
    "frames_schema",
    "frames_with_hk",
    "images",
    "images_at",
    "light_curve",
    "locate",
    "register_views",
    "scan",
    "sql_ident",
    "sql_list",
    "sql_literal",
    "views_dir",
]
