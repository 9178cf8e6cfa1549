-- hk_quabo: which module and quabo each quabo housekeeping reading belongs to.
-- A quabo's board location is BOARDLOC = 4 x module + quabo (the DAQ's module id is the
-- quabo IP's low 16 bits >> 2); when a device never reported BOARDLOC, the <n> of its
-- device name QUABO_<n> (which equals BOARDLOC in recorded data) is used instead.
CREATE OR REPLACE VIEW hk_quabo AS
WITH boards AS (
    SELECT run, device, CAST(max(value) AS INTEGER) AS boardloc
    FROM hk
    WHERE field = 'BOARDLOC'
    GROUP BY run, device
),
quabo AS (
    SELECT
        h.run, h.unix_t_ns, h.time, h.device, h.field, h.value, h.text,
        coalesce(b.boardloc, TRY_CAST(regexp_extract(h.device, '^QUABO_([0-9]+)$', 1) AS INTEGER))
            AS boardloc
    FROM hk AS h
    LEFT JOIN boards AS b ON b.run = h.run AND b.device = h.device
    WHERE regexp_matches(h.device, '^QUABO_[0-9]+$')
)
SELECT
    run, unix_t_ns, time, device, boardloc,
    boardloc >> 2 AS module,
    boardloc & 3 AS quabo,
    field, value, text
FROM quabo;
