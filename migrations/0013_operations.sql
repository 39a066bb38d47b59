-- Operations on many paints at once (issue 28): an import of a CSV file
-- (POST /admin/paints/import) now, a bulk edit with undo later. Each is
-- one row here, written in the transaction of the writes it made, and
-- every audit entry it caused names it in audit_log.operation_id, so
-- GET /admin/audit?operation=<id> lists exactly what it changed.
--
-- kind says what made it; summary holds its figures (an import's:
-- {"rows", "create", "update", "unchanged"}), so a bulk edit can keep its
-- own without a migration. actor_id, as audit_log's since 0011, has no
-- foreign key: an operation keeps the id of a user deleted since.
CREATE TABLE operations (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind      text NOT NULL CHECK (kind IN ('import', 'bulk')),
    at        timestamptz NOT NULL DEFAULT now(),
    actor_id  bigint,
    actor     text NOT NULL,            -- the username at the time
    summary   jsonb NOT NULL DEFAULT '{}'
);

-- Adding a nullable column rewrites no row and fires no trigger: the
-- append-only rule of 0011 stands (it refuses UPDATE, DELETE, TRUNCATE).
-- Entries written before this migration, and single writes, have none.
ALTER TABLE audit_log ADD COLUMN operation_id bigint REFERENCES operations (id);
CREATE INDEX audit_log_operation_idx ON audit_log (operation_id, id)
    WHERE operation_id IS NOT NULL;

-- Operations are part of the trail: append-only as audit_log, by the same
-- statement trigger. Its message now names the table it guards (for
-- audit_log the words are those of 0011).
CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'entries are only ever added (INSERT) and read';
END
$$;

CREATE TRIGGER operations_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON operations
    FOR EACH STATEMENT
    EXECUTE FUNCTION audit_log_refuse_change();
