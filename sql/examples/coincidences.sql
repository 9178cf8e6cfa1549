-- Coincidences between modules: bright img16 frames (pixel_max > 1000) seen by two
-- different modules within 1 microsecond of each other (candidate optical pulses seen
-- by both). A banded join: frames are bucketed by unix_t_ns // 1000, so every pair
-- within the window lies in the same or a neighbouring bucket.
WITH bright AS (
    SELECT run, module, frame, unix_t_ns, pixel_max, unix_t_ns // 1000 AS bucket
    FROM frames
    WHERE data_product = 'img16' AND pixel_max > 1000
),
shifted AS (
    SELECT *, unnest([bucket - 1, bucket, bucket + 1]) AS near_bucket FROM bright
)
SELECT
    a.module AS module_a, b.module AS module_b,
    a.run AS run_a, b.run AS run_b,
    a.frame AS frame_a, b.frame AS frame_b,
    a.unix_t_ns AS unix_t_ns_a, b.unix_t_ns AS unix_t_ns_b,
    b.unix_t_ns - a.unix_t_ns AS dt_ns,
    a.pixel_max AS pixel_max_a, b.pixel_max AS pixel_max_b
FROM bright AS a
JOIN shifted AS b ON b.near_bucket = a.bucket AND b.module > a.module
WHERE abs(b.unix_t_ns - a.unix_t_ns) <= 1000
ORDER BY unix_t_ns_a, module_a, module_b;
