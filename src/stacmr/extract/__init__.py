"""Raw images → the release format: visual region features, OCR tokens with boxes, their fastText vectors (issue #7)."""
