-- The cost of a paint write (issue 13). Measured on the local stack with a
-- write-only wrk load of POST /admin/paints/{id}/stock: PostgreSQL spent
-- about 850 us of CPU per write, most of it adding an entry to each of the
-- 13 indexes of paints (three of them GIN trigram) for every new row
-- version. A stock change is the commonest write of an inventory, and
-- stock was in two indexes, so no stock change could be a HOT update.
--
-- Without an index on stock, and with room left on each page, a stock
-- change is a HOT update: the new row version goes on the same page and no
-- index is touched. Measured after this migration: about 575 us per write,
-- with 98 % of updates HOT. The price: sort=stock and in_stock are now
-- served by a scan of paints (6 ms for the first page of 10,000 paints)
-- when the page is not in the cache.

DROP INDEX paints_brand_idx;            -- a prefix of paints_brand_created_idx
DROP INDEX paints_stock_id_idx;
DROP INDEX paints_brand_stock_idx;

-- New pages keep 15 % free for the HOT versions of their rows; existing
-- pages gain room as pruning removes dead versions.
ALTER TABLE paints SET (fillfactor = 85);

-- cache_outbox is a queue: every write adds a row and its acknowledgement
-- deletes it. At the default scale factor autovacuum let about 15,000 dead
-- rows gather; vacuum it after every 1,000 instead.
ALTER TABLE cache_outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- audit_diff was a SQL function that cannot be inlined (it aggregates), so
-- PostgreSQL planned its query again at every write: about 160 us of each
-- write's CPU. In PL/pgSQL the query's plan is kept for the session's life;
-- the result is the same.
CREATE OR REPLACE FUNCTION audit_diff(old_row jsonb, new_row jsonb, skip text[])
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_object_agg(k, jsonb_build_object('old', o, 'new', n)), '{}')
            FROM (SELECT k, old_row -> k AS o, new_row -> k AS n
                  FROM (SELECT jsonb_object_keys(coalesce(old_row, '{}') || coalesce(new_row, '{}')) AS k) keys
                  WHERE NOT (k = ANY (skip))) d
            WHERE o IS DISTINCT FROM n);
END
$$;
