-- A password reset, or disabling a user, ends every session of that user:
-- a stolen session must not survive the reset, and re-enabling a user must
-- not bring old sessions back. A trigger, so that every path (create-admin,
-- psql, a future users API) does it in the same transaction.

CREATE FUNCTION end_sessions_of_user() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sessions WHERE user_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_end_sessions
    AFTER UPDATE OF password_hash, disabled ON users
    FOR EACH ROW
    WHEN (NEW.password_hash IS DISTINCT FROM OLD.password_hash
          OR (NEW.disabled AND NOT OLD.disabled))
    EXECUTE FUNCTION end_sessions_of_user();
