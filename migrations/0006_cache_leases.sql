-- Which service process may serve from which Redis, until when.
--
-- A process serves reads from Redis only under a short lease (app/cache.c,
-- piece T), and announces each lease here, committed, before taking it:
-- `redis` names the Redis server and key space it trusts (run_id and
-- replication id), `until` is when the lease ends at the latest, in
-- PostgreSQL's clock. A writer whose cache invalidation could not be
-- applied waits until no lease is running (or another process applied
-- it), and an outbox row is only deleted while no running lease names
-- another Redis. Each process upserts its own row four times a second;
-- rows of processes long gone are pruned.
CREATE TABLE cache_leases (
    holder text PRIMARY KEY,        -- host/pid/random of one process start
    redis  text NOT NULL,
    until  timestamptz NOT NULL
) WITH (fillfactor = 50);           -- room for HOT updates of the same row
