-- Dropped frames: streams whose frame times have gaps longer than 1.5 x their median frame
-- interval, with the nominal frame rate, the number of gaps and the estimated frames lost.
-- Fixed-rate (imaging) streams only: triggered pulse-height streams (ph256, ph1024) have no
-- nominal period, and module_rate leaves their gaps NULL.
SELECT
    run, data_product, module, frame_rate_hz, median_interval_ns, gaps, dropped_frames_est
FROM module_rate
WHERE NOT triggered AND gaps > 0
ORDER BY dropped_frames_est DESC, run, data_product, module;
