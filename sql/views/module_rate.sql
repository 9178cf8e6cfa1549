-- module_rate: per run, data product and module: the median frame interval (the nominal
-- frame period), the frame rate it implies, the gaps (intervals longer than 1.5 x the
-- median) with an estimate of the frames dropped in them (round(interval / median) - 1 per
-- gap), and the steps where time ran backwards. Built on frame_intervals.
CREATE OR REPLACE VIEW module_rate AS
WITH period AS (
    SELECT run, data_product, module, count(*) AS intervals, median(interval_ns) AS median_interval_ns
    FROM frame_intervals
    GROUP BY run, data_product, module
)
SELECT
    p.run, p.data_product, p.module, p.intervals, p.median_interval_ns,
    CASE WHEN p.median_interval_ns > 0 THEN 1e9 / p.median_interval_ns END AS frame_rate_hz,
    count(*) FILTER (WHERE i.interval_ns > 1.5 * p.median_interval_ns) AS gaps,
    coalesce(CAST(sum(round(i.interval_ns / p.median_interval_ns) - 1)
        FILTER (WHERE i.interval_ns > 1.5 * p.median_interval_ns) AS BIGINT), 0) AS dropped_frames_est,
    count(*) FILTER (WHERE i.interval_ns <= 0) AS backward_steps
FROM period AS p
JOIN frame_intervals AS i USING (run, data_product, module)
GROUP BY p.run, p.data_product, p.module, p.intervals, p.median_interval_ns;
