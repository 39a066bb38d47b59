-- Low stock (#28). A paint may have its own threshold; NULL means the
-- service's LOW_STOCK_THRESHOLD applies. A paint is low when its
-- effective threshold is above 0 and its stock is at or below it (so an
-- out-of-stock paint is low; a threshold of 0 opts a paint out).
-- 0013 belongs to the CSV import's work: this file is 0014 on purpose.

ALTER TABLE paints ADD COLUMN low_stock_threshold integer NULL
    CHECK (low_stock_threshold BETWEEN 0 AND 1000000);

-- The metrics sampler counts the low paints every few seconds, in two
-- disjoint arms (PAINT_LOW_SQL in paint_model.h), each from one of these
-- partial indexes alone (index-only scans): paints on the default
-- threshold by their stock (stock <= the default), and the few paints
-- low by their own threshold. On 100,000 paints the count went from a
-- 25 ms sequential scan to 0.5 ms. ?low_stock=true can use them too.
CREATE INDEX paints_low_default_idx ON paints (stock, id)
    WHERE low_stock_threshold IS NULL;
CREATE INDEX paints_low_own_idx ON paints (stock, id)
    WHERE low_stock_threshold > 0 AND stock <= low_stock_threshold;
