-- run_quality: per run and stream (data product, module): how many frames, over which
-- trusted time span (first/last frame without clock desync), at what mean frame rate,
-- how many frames carry each time_quality flag (1 no_wr: no White Rabbit time;
-- 2 clock_desync: WR and host clocks disagree by more than a second; 4 quabo_missing: a quabo
-- sent no packet), and how many of its files were damaged or cut short (from files).
-- When no frame of a stream has a trusted time (every frame flagged clock_desync, as in
-- recordings without White Rabbit lock), the span and rate come from the host clock the
-- desynchronised frames carry instead of being NULL; `time_source` says which: 'wr' or 'host'.
CREATE OR REPLACE VIEW run_quality AS
WITH f AS (
    SELECT
        run, data_product, module,
        count(*) AS frames,
        min(unix_t_ns) FILTER (WHERE (time_quality & 2) = 0 AND unix_t_ns > 0) AS first_unix_t_ns,
        max(unix_t_ns) FILTER (WHERE (time_quality & 2) = 0 AND unix_t_ns > 0) AS last_unix_t_ns,
        min(unix_t_ns) FILTER (WHERE unix_t_ns > 0) AS first_host_unix_t_ns,
        max(unix_t_ns) FILTER (WHERE unix_t_ns > 0) AS last_host_unix_t_ns,
        count(*) FILTER (WHERE (time_quality & 2) = 0 AND unix_t_ns > 0) AS trusted_frames,
        count(*) FILTER (WHERE time_quality = 0) AS ok_frames,
        count(*) FILTER (WHERE (time_quality & 1) <> 0) AS no_wr_frames,
        count(*) FILTER (WHERE (time_quality & 2) <> 0) AS clock_desync_frames,
        count(*) FILTER (WHERE (time_quality & 4) <> 0) AS quabo_missing_frames
    FROM frames
    GROUP BY run, data_product, module
),
t AS (
    SELECT
        *,
        CASE WHEN trusted_frames > 0 THEN 'wr' WHEN first_host_unix_t_ns IS NOT NULL
            THEN 'host' END AS time_source,
        CASE WHEN trusted_frames > 0 THEN first_unix_t_ns ELSE first_host_unix_t_ns END
            AS first_ns,
        CASE WHEN trusted_frames > 0 THEN last_unix_t_ns ELSE last_host_unix_t_ns END AS last_ns
    FROM f
),
fi AS (
    SELECT
        run, data_product, module,
        count(*) AS files,
        count(*) FILTER (WHERE damaged_frames > 0) AS damaged_files,
        count(*) FILTER (WHERE truncated_tail_bytes > 0) AS truncated_files,
        CAST(sum(damaged_frames) AS BIGINT) AS damaged_frames,
        CAST(sum(truncated_tail_bytes) AS BIGINT) AS truncated_tail_bytes
    FROM files
    GROUP BY run, data_product, module
)
SELECT
    coalesce(f.run, fi.run) AS run,
    coalesce(f.data_product, fi.data_product) AS data_product,
    coalesce(f.module, fi.module) AS module,
    coalesce(f.frames, 0) AS frames,
    f.first_ns AS first_unix_t_ns,
    f.last_ns AS last_unix_t_ns,
    make_timestamp_ns(f.first_ns) AT TIME ZONE 'UTC' AS first_time,
    make_timestamp_ns(f.last_ns) AT TIME ZONE 'UTC' AS last_time,
    (f.last_ns - f.first_ns) / 1e9 AS duration_s,
    CASE WHEN f.last_ns > f.first_ns
        THEN (f.frames - 1) * 1e9 / (f.last_ns - f.first_ns) END AS frame_rate_hz,
    f.time_source,
    coalesce(f.ok_frames, 0) AS ok_frames,
    coalesce(f.no_wr_frames, 0) AS no_wr_frames,
    coalesce(f.clock_desync_frames, 0) AS clock_desync_frames,
    coalesce(f.quabo_missing_frames, 0) AS quabo_missing_frames,
    coalesce(fi.files, 0) AS files,
    coalesce(fi.damaged_files, 0) AS damaged_files,
    coalesce(fi.truncated_files, 0) AS truncated_files,
    coalesce(fi.damaged_frames, 0) AS damaged_frames,
    coalesce(fi.truncated_tail_bytes, 0) AS truncated_tail_bytes
FROM t AS f
FULL JOIN fi ON fi.run = f.run AND fi.data_product = f.data_product AND fi.module = f.module;
