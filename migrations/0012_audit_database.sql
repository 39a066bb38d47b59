-- The operator's actions on PostgreSQL itself are audited (issue 27):
-- emptying the statement statistics (pg_stat_statements_reset) and
-- cancelling a backend's statement (pg_cancel_backend). Their entries are
-- about the entity 'database'; a cancel's entity_id is the backend's pid,
-- a reset's is NULL. Only an enabled admin writes them (the trigger of
-- migration 0010 re-reads the actor inside the write, as for paints).

ALTER TABLE audit_log DROP CONSTRAINT audit_log_entity_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_entity_check
    CHECK (entity IN ('paint', 'user', 'database'));

CREATE OR REPLACE FUNCTION audit_actor_is_admin() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.actor_id IS NOT NULL
       AND (NEW.entity IN ('paint', 'database')
            OR NEW.action IN ('create', 'update', 'end_sessions'))
       AND NOT EXISTS (SELECT 1 FROM users
                       WHERE id = NEW.actor_id AND is_admin AND NOT disabled) THEN
        RAISE EXCEPTION 'the acting user % is no longer an enabled admin', NEW.actor_id
            USING ERRCODE = 'PSA01';
    END IF;
    RETURN NEW;
END
$$;
