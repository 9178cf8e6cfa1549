-- frame_gaps: every gap in a stream (an interval longer than 1.5 x the stream's median
-- interval, see module_rate): the frames on either side, when the gap started and stopped,
-- and how many frames it probably lost (round(interval / median) - 1). Fixed-rate (imaging)
-- products only: triggered pulse-height products (ph256, ph1024) have no nominal period, so
-- a long wait between triggers is not a gap (see module_rate).
CREATE OR REPLACE VIEW frame_gaps AS
SELECT
    i.run, i.data_product, i.module,
    i.frame AS frame_before,
    i.next_frame AS frame_after,
    i.unix_t_ns AS start_unix_t_ns,
    i.next_unix_t_ns AS stop_unix_t_ns,
    make_timestamp_ns(i.unix_t_ns) AT TIME ZONE 'UTC' AS start_time,
    make_timestamp_ns(i.next_unix_t_ns) AT TIME ZONE 'UTC' AS stop_time,
    i.interval_ns,
    m.median_interval_ns,
    CAST(round(i.interval_ns / m.median_interval_ns) - 1 AS BIGINT) AS missing_frames_est
FROM frame_intervals AS i
JOIN module_rate AS m USING (run, data_product, module)
WHERE NOT m.triggered AND i.interval_ns > 1.5 * m.median_interval_ns;
