-- The audit trail: who changed what, when, with each changed field's old
-- and new value. Entries are written in the same transaction (most often
-- the same statement) as the write they describe, so an acknowledged write
-- always has its entry and a failed one never does.

CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor_id   bigint REFERENCES users (id) ON DELETE SET NULL,
    actor      text NOT NULL,            -- the username at the time
    entity     text NOT NULL CHECK (entity IN ('paint', 'user')),
    entity_id  bigint NOT NULL,
    action     text NOT NULL CHECK (action ~ '^[a-z_]{1,32}$'),
    changes    jsonb NOT NULL DEFAULT '{}'  -- {"field": {"old": .., "new": ..}}
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id, id);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, id);
CREATE INDEX audit_log_at_idx ON audit_log (at, id);

-- The fields that differ between two rows as {"field": {"old": o, "new": n}}.
-- A NULL row stands for "none" (a create has no old row, a delete no new
-- one). Keys in skip are left out (bookkeeping such as version, or secrets:
-- a changed password_hash is recorded as {"password": {"changed": true}}
-- by the caller, never as its value).
CREATE FUNCTION audit_diff(old_row jsonb, new_row jsonb, skip text[])
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, jsonb_build_object('old', o, 'new', n)), '{}')
    FROM (SELECT k, old_row -> k AS o, new_row -> k AS n
          FROM (SELECT jsonb_object_keys(coalesce(old_row, '{}') || coalesce(new_row, '{}')) AS k) keys
          WHERE NOT (k = ANY (skip))) d
    WHERE o IS DISTINCT FROM n
$$;
