-- frame_intervals: the time from each frame to the next frame of its stream (run, data
-- product, module, in frame order), for pairs whose two timestamps are trusted: no clock
-- desync flag (time_quality bit 2) and not zero (a frame with no quabo packet at all).
-- Pairs around an untrusted frame are left out rather than bridged, so a desynchronised
-- frame never looks like a gap. Negative intervals mean time ran backwards.
CREATE OR REPLACE VIEW frame_intervals AS
WITH ordered AS (
    SELECT
        run, data_product, module, frame, unix_t_ns,
        (time_quality & 2) = 0 AND unix_t_ns > 0 AS trusted,
        lead(frame) OVER stream AS next_frame,
        lead(unix_t_ns) OVER stream AS next_unix_t_ns,
        lead((time_quality & 2) = 0 AND unix_t_ns > 0) OVER stream AS next_trusted
    FROM frames
    WINDOW stream AS (PARTITION BY run, data_product, module ORDER BY frame)
)
SELECT
    run, data_product, module, frame, next_frame, unix_t_ns, next_unix_t_ns,
    next_unix_t_ns - unix_t_ns AS interval_ns
FROM ordered
WHERE trusted AND next_trusted;
