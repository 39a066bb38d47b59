-- Indexes for GET /admin/paints: every filter and every sort (with the id
-- tie-breaker that keyset pagination needs) is served by an index.
--
-- The wider indexes make four of the first migration's single-column ones
-- redundant (each is a prefix of a new one), so they go: every index costs
-- on every write.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- sorts: (column, id) for each sortable column, both directions
CREATE INDEX paints_created_id_idx ON paints (created_at, id);
CREATE INDEX paints_name_id_idx ON paints (name, id);
CREATE INDEX paints_price_id_idx ON paints (price, id);
CREATE INDEX paints_stock_id_idx ON paints (stock, id);

-- the common filters, in the default order (newest first)
CREATE INDEX paints_brand_created_idx ON paints (brand, created_at, id);
CREATE INDEX paints_family_type_created_idx ON paints (color_family, color_type, created_at, id);
CREATE INDEX paints_type_created_idx ON paints (color_type, created_at, id);

-- q: case-insensitive substring match on name, brand or colour code
CREATE INDEX paints_name_trgm_idx ON paints USING gin (name gin_trgm_ops);
CREATE INDEX paints_brand_trgm_idx ON paints USING gin (brand gin_trgm_ops);
CREATE INDEX paints_code_trgm_idx ON paints USING gin (color_code gin_trgm_ops);

DROP INDEX paints_created_at_idx;        -- prefix of paints_created_id_idx
DROP INDEX paints_stock_idx;             -- prefix of paints_stock_id_idx
DROP INDEX paints_color_family_idx;      -- prefix of paints_family_type_created_idx
DROP INDEX paints_family_type_idx;       -- prefix of paints_family_type_created_idx
