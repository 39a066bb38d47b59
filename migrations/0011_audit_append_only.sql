-- The audit trail is append-only (issue 24): entries are added and read,
-- never changed or removed, whatever role runs the statement. A trigger,
-- not a privilege: the service's role owns the tables in the local stack
-- and compose (migrations run as it), and an owner's privileges cannot be
-- taken from it. A statement trigger, so that an UPDATE or DELETE is
-- refused even when it matches no row, and TRUNCATE too.
--
-- The limit of a trigger: the table's owner may still drop or disable it.
-- Where that matters, run migrations as an owner role and the service as a
-- role granted only SELECT and INSERT on audit_log.
--
-- actor_id loses its foreign key to users. With ON DELETE SET NULL,
-- deleting a user rewrote every entry that user made (an UPDATE this
-- trigger must refuse), and an exception for "only actor_id set to NULL"
-- would let any session blank every actor id. An entry now keeps the id
-- (and the username, as before) of a user deleted since, as entity_id
-- already keeps the id of a deleted paint. Ids are never reused (identity
-- column). Entries are still only written with the id of the session's
-- user, or NULL for the create-admin command.

ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_id_fkey;

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'entries are only ever added (INSERT) and read';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT
    EXECUTE FUNCTION audit_log_refuse_change();
