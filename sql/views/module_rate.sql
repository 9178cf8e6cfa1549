-- module_rate: per run, data product and module: the median frame interval, the frame rate,
-- the gaps (intervals longer than 1.5 x the median) with an estimate of the frames dropped in
-- them (round(interval / median) - 1 per gap), and the steps where time ran backwards. Built on
-- frame_intervals.
-- Imaging products (img16, img8) are read out at a fixed rate, so a long interval is a gap.
-- Pulse-height products (ph256, ph1024) are triggered: a frame is written when a pixel fires,
-- so their intervals are random and there is no nominal period. For them `triggered` is true,
-- `frame_rate_hz` is the mean trigger rate (intervals / their total time), and `gaps` and
-- `dropped_frames_est` are NULL (not applicable), never thousands of false "dropped frames".
CREATE OR REPLACE VIEW module_rate AS
WITH period AS (
    SELECT
        run, data_product, module, count(*) AS intervals,
        median(interval_ns) AS median_interval_ns,
        sum(interval_ns) AS total_interval_ns,
        data_product IN ('ph256', 'ph1024') AS triggered
    FROM frame_intervals
    GROUP BY run, data_product, module
)
SELECT
    p.run, p.data_product, p.module, p.triggered, p.intervals, p.median_interval_ns,
    CASE
        WHEN p.triggered AND p.total_interval_ns > 0 THEN p.intervals * 1e9 / p.total_interval_ns
        WHEN NOT p.triggered AND p.median_interval_ns > 0 THEN 1e9 / p.median_interval_ns
    END AS frame_rate_hz,
    CASE WHEN NOT p.triggered THEN
        count(*) FILTER (WHERE i.interval_ns > 1.5 * p.median_interval_ns) END AS gaps,
    CASE WHEN NOT p.triggered THEN
        coalesce(CAST(sum(round(i.interval_ns / p.median_interval_ns) - 1)
            FILTER (WHERE i.interval_ns > 1.5 * p.median_interval_ns) AS BIGINT), 0)
    END AS dropped_frames_est,
    count(*) FILTER (WHERE i.interval_ns <= 0) AS backward_steps
FROM period AS p
JOIN frame_intervals AS i USING (run, data_product, module)
GROUP BY p.run, p.data_product, p.module, p.triggered, p.intervals, p.median_interval_ns,
    p.total_interval_ns;
