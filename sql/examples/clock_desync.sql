-- Clock desync report: every episode (consecutive frames of a stream) where the White
-- Rabbit and DAQ host clocks disagreed by more than a second (time_quality bit 2): first
-- and last frame, how many frames, and the host-clock times they carry.
WITH desync AS (
    SELECT
        run, data_product, module, frame, unix_t_ns,
        frame - row_number() OVER (PARTITION BY run, data_product, module ORDER BY frame)
            AS episode
    FROM frames
    WHERE (time_quality & 2) <> 0
)
SELECT
    run, data_product, module,
    min(frame) AS first_frame,
    max(frame) AS last_frame,
    count(*) AS frames,
    min(unix_t_ns) AS min_unix_t_ns,
    max(unix_t_ns) AS max_unix_t_ns
FROM desync
GROUP BY run, data_product, module, episode
ORDER BY run, data_product, module, first_frame;
