-- Per-run data quality: for every stream, the frames, their trusted time span and frame
-- rate (time_source 'host' when every frame is clock_desync and the host clock was used),
-- the share of frames with a perfect timestamp, each time_quality flag's count, and the
-- damaged or cut-short files.
SELECT
    run, data_product, module, frames, first_time, last_time, duration_s, frame_rate_hz,
    time_source, ok_frames,
    round(100.0 * ok_frames / frames, 3) AS ok_percent,
    no_wr_frames, clock_desync_frames, quabo_missing_frames,
    files, damaged_files, truncated_files, truncated_tail_bytes
FROM run_quality
ORDER BY run, data_product, module;
