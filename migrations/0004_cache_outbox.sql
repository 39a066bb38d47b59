-- Cache invalidations that must not be lost.
--
-- Every write inserts a row here in its own transaction (the same statement
-- as the write), so a committed write always leaves a record that its
-- paint's cached copy and the cached lists are stale. After the commit the
-- service invalidates Redis and deletes the row; if Redis cannot be
-- reached the row stays, and every process drains the table into Redis
-- (once a second, and before it trusts Redis again after any reconnect).
CREATE TABLE cache_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    paint_id   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
