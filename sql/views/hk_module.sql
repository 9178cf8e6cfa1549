-- hk_module: one housekeeping series per (run, module, field): the readings of the module's
-- lowest-numbered quabo that reports the field (quabo 0 whenever it reports it). A module has
-- four quabos whose temperatures and voltages differ slightly; picking one fixed board keeps
-- a series free of jumps between boards, and quabo 0 is the board whose packets time the
-- module's frames. Per-quabo readings are in hk_quabo.
CREATE OR REPLACE VIEW hk_module AS
WITH source AS (
    SELECT run, module, field, min(boardloc) AS boardloc
    FROM hk_quabo
    GROUP BY run, module, field
)
SELECT q.run, q.module, q.unix_t_ns, q.time, q.device, q.boardloc, q.field, q.value, q.text
FROM hk_quabo AS q
JOIN source AS s
    ON s.run = q.run AND s.module = q.module AND s.field = q.field AND s.boardloc = q.boardloc;
