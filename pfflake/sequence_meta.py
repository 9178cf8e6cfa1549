"""Header fields and frame times of a :class:`~pfflake.sequence.PFFSequence`.

``get_metadata_arrays`` decodes the requested fields of every (or the given)
frame as int64 arrays, plus the virtual :data:`UNIX_T_NS` (int64 ns since the
UNIX epoch, :mod:`pfflake.timestamps`) and :data:`TIME_QUALITY` (uint8 flags).
``timestamps()`` caches the full, read-only time array once per sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .timestamps import TimeOverflowError, frame_times, primary_timing_fields

UNIX_T_NS = "unix_t_ns"
TIME_QUALITY = "time_quality"
_VIRTUAL = (UNIX_T_NS, TIME_QUALITY)


class SequenceMetadata:
    """The metadata and time methods of :class:`~pfflake.sequence.PFFSequence` (a mixin:
    it reads the sequence's ``product``, ``name``, files through ``_file``, the frame
    tables ``_starts``/``_file_frame_counts``/``_total_frames``, ``_normalize`` and
    ``_locate``, and keeps the time cache in ``_ts``/``_quality``/``_is_monotonic``)."""

    def _resolve(self, key: str) -> str:
        """pypff key for ``key`` (accepts ``quabo_0_pkt_num`` for ``quabo_0.pkt_num``)."""
        fields = self.product.header_fields
        if key in fields:
            return key
        for f in fields:
            if f.replace(".", "_") == key:
                return f
        raise KeyError(
            f"{self.name}: unknown metadata key {key!r}; known: "
            f"{', '.join(fields)}, {UNIX_T_NS}, {TIME_QUALITY}"
        )

    def get_metadata_arrays(
        self,
        keys: list[str],
        indices: Sequence[int] | np.ndarray | None = None,
        slice_obj: slice | None = None,
    ) -> dict[str, np.ndarray]:
        """Header fields for all frames (or ``indices`` / ``slice_obj``) as int64 arrays.

        Keys are pypff's (``pkt_num``, ``quabo_0.tv_sec``; ``quabo_0_tv_sec``
        also accepted) plus the virtual ``unix_t_ns`` (int64 ns, same rule as
        :meth:`timestamps`) and ``time_quality`` (uint8 flags). Results follow
        the request order. Unknown keys raise ``KeyError``.
        """
        want = list(keys)
        real = [self._resolve(k) for k in want if k not in _VIRTUAL]
        virtual = [k for k in want if k in _VIRTUAL]
        kind = self.product.header_kind
        fetch = list(dict.fromkeys(real + (primary_timing_fields(kind) if virtual else [])))
        if slice_obj is not None:
            indices = np.arange(*slice_obj.indices(self._total_frames))
        if indices is None:
            raw = self._decode_all(fetch)

            def rows_of(keys: list[str], rows: np.ndarray) -> dict[str, np.ndarray]:
                return self._decode_at(keys, rows)
        else:
            idx = self._normalize(indices)
            raw = self._decode_at(fetch, idx)

            def rows_of(keys: list[str], rows: np.ndarray) -> dict[str, np.ndarray]:
                return self._decode_at(keys, idx[rows])

        out: dict[str, np.ndarray] = {}
        if virtual:
            try:
                ts, quality = frame_times(raw, kind, rows_of)
            except TimeOverflowError as e:
                g = int(e.rows[0]) if indices is None else int(idx[e.rows[0]])
                fi, local = self._locate(np.array([g]))
                raise self._file(int(fi[0])).time_error(int(local[0]), e) from None
            raw[UNIX_T_NS], raw[TIME_QUALITY] = ts, quality
        for k in want:
            out[k] = raw[k] if k in _VIRTUAL else raw[self._resolve(k)]
        return out

    def _decode_all(self, keys: list[str]) -> dict[str, np.ndarray]:
        nonempty = [f for f, n in enumerate(self._file_frame_counts) if n]
        if len(nonempty) == 1:  # one file: its arrays are the answer, no copy
            return self._file(nonempty[0]).decode(keys, 0, self._file_frame_counts[nonempty[0]])
        out = {k: np.empty(self._total_frames, dtype=np.int64) for k in keys}
        for f, n in enumerate(self._file_frame_counts):
            if n:
                part = self._file(f).decode(keys, 0, n)
                s = int(self._starts[f])
                for k in keys:
                    out[k][s : s + n] = part[k]
        return out

    def _decode_at(self, keys: list[str], idx: np.ndarray) -> dict[str, np.ndarray]:
        out = {k: np.empty(len(idx), dtype=np.int64) for k in keys}
        fidx, local = self._locate(idx)
        for f in np.unique(fidx):
            sel = fidx == f
            part = self._file(int(f)).decode_at(keys, local[sel])
            for k in keys:
                out[k][sel] = part[k]
        return out

    def get_all_metadata(self) -> dict[str, Any]:
        """Every header field, nested like the header (``{"quabo_0": {"pkt_num": ...}}``)."""
        flat = self.get_metadata_arrays(list(self.product.header_fields))
        nested: dict[str, Any] = {}
        for k, v in flat.items():
            if "." in k:
                parent, child = k.split(".", 1)
                nested.setdefault(parent, {})[child] = v
            else:
                nested[k] = v
        return nested

    def _ensure_times(self) -> None:
        if self._ts is None:
            meta = self.get_metadata_arrays([UNIX_T_NS, TIME_QUALITY])
            self._ts, self._quality = meta[UNIX_T_NS], meta[TIME_QUALITY]
            self._ts.flags.writeable = False
            self._quality.flags.writeable = False

    def timestamps(
        self,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        as_datetime: bool = False,
    ) -> np.ndarray:
        """Frame times as int64 ns since the UNIX epoch (``datetime64[ns]`` view on request).

        The full array is cached and read-only; ``indices`` select frames in
        request order. Subtract an epoch in integer space before dividing.
        """
        self._ensure_times()
        ts = self._ts if indices is None else self._ts[self._normalize(indices)]
        return ts.view("datetime64[ns]") if as_datetime else ts

    def timestamp_quality(self, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Per-frame uint8 flags (see :mod:`pfflake.timestamps`): 0 ok, 1 no WR,
        2 clock desync, 4 quabo missing (bits combine)."""
        self._ensure_times()
        return self._quality if indices is None else self._quality[self._normalize(indices)]

    def timestamp_at(self, idx: int) -> int:
        """One frame's time in int64 ns."""
        return int(self.timestamps(np.array([idx]))[0])

    def timestamps_at(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self.timestamps(indices)

    def seek_time(self, timestamp_ns: int) -> int:
        """Index of the frame whose time is closest to ``timestamp_ns`` (earliest on ties).

        Exact on unsorted times too (desynced clocks): the search falls back
        from bisection to a full scan when the times are not monotonic.
        """
        if self._total_frames == 0:
            return 0
        ts = self.timestamps()
        t = int(timestamp_ns)
        if self._monotonic():
            pos = int(np.searchsorted(ts, t, side="left"))
            if pos == 0:
                return 0
            if pos >= len(ts):
                return len(ts) - 1
            return pos - 1 if t - ts[pos - 1] <= ts[pos] - t else pos
        return int(np.argmin(np.abs(ts - t)))

    def _monotonic(self) -> bool:
        if self._is_monotonic is None:
            ts = self.timestamps()
            self._is_monotonic = bool(np.all(ts[1:] >= ts[:-1]))
        return self._is_monotonic
