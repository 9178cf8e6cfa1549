-- Brightest events: the 20 imaging frames (img16, img8) with the brightest single pixel,
-- with when they happened and which pixel (row, col) peaked. Pulse-height products are
-- left out: every one of their frames is a trigger by design.
SELECT
    run, data_product, module, frame, unix_t_ns, time,
    pixel_max,
    pixel_argmax // 32 AS peak_row,
    pixel_argmax % 32 AS peak_col,
    pixel_sum
FROM frames
WHERE data_product IN ('img16', 'img8')
ORDER BY pixel_max DESC, unix_t_ns, module, frame
LIMIT 20;
