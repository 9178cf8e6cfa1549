-- Narrow, bright images: DL1 Hillas parameters (cleaned, pedestal-subtracted) cut on
-- width (degrees) and size (ADC after gain), joined to their frames for time and quality.
SELECT
    d.run, d.data_product, d.module, d.frame, f.unix_t_ns, f.time, f.time_quality,
    d.size, d.width, d.length, d.psi_deg, d.x, d.y
FROM dl1 AS d
JOIN frames AS f USING (run, data_product, module, frame)
WHERE d.size > 1000 AND d.width < 0.5
ORDER BY d.size DESC, f.unix_t_ns, d.module
LIMIT 50;
