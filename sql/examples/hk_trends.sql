-- Housekeeping trends: detector temperature (DET_TEMP, hk TEMP1) per module and UTC hour,
-- over the module's four quabo boards: readings, mean, min and max.
SELECT
    run,
    module,
    make_timestamp_ns((unix_t_ns // 3600000000000) * 3600000000000) AT TIME ZONE 'UTC' AS hour,
    count(*) AS readings,
    avg(value) AS mean_det_temp,
    min(value) AS min_det_temp,
    max(value) AS max_det_temp
FROM hk_quabo
WHERE field = 'DET_TEMP'
GROUP BY ALL
ORDER BY run, module, hour;
