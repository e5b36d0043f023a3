-- The current definitions of the functions and triggers that tell web processes about credentials that
-- changed: the declared schema, beside db/models.py. Migrations never run this file (see
-- progress_triggers.sql); tests/integration/db/test_schema.py checks that the migrated schema equals it.

-- create_token_changed_function --
-- Notifies the auth_changes channel that a token was revoked, deleted or had its expiry changed.
CREATE OR REPLACE FUNCTION api_tokens_notify_change_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Every web process's hub LISTENs here and re-checks the sockets opened with this token, so a
    -- revoked token stops receiving events within 2 s on every process (docs/design.md, "Revocation").
    PERFORM pg_notify('auth_changes', json_build_object('token_id', OLD.id, 'user_id', OLD.user_id)::text);
    RETURN NULL;
END;
$$

-- create_user_deleted_function --
-- Notifies the auth_changes channel that a user is gone (its tokens go with it).
CREATE OR REPLACE FUNCTION users_notify_deleted_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('auth_changes', json_build_object('user_id', OLD.id)::text);
    RETURN NULL;
END;
$$

-- create_token_changed_trigger --
-- Fires when a token's revocation or expiry changes.
CREATE TRIGGER api_tokens_changed
    AFTER UPDATE OF revoked_at, expires_at ON api_tokens
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION api_tokens_notify_change_v1()

-- create_token_deleted_trigger --
-- Fires when a token row is deleted (by hand, or with its user).
CREATE TRIGGER api_tokens_deleted
    AFTER DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION api_tokens_notify_change_v1()

-- create_user_deleted_trigger --
-- Fires when a user is deleted.
CREATE TRIGGER users_deleted
    AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_notify_deleted_v1()

-- create_truncated_function --
-- Notifies the auth_changes channel that a whole table of credentials was emptied (no rows to name).
CREATE OR REPLACE FUNCTION auth_notify_truncated_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- No rows to name: every hub re-checks every socket's token (docs/design.md, "Revocation").
    PERFORM pg_notify('auth_changes', '{}');
    RETURN NULL;
END;
$$

-- create_tokens_truncated_trigger --
-- Fires when api_tokens is truncated (row triggers do not).
CREATE TRIGGER api_tokens_truncated
    AFTER TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION auth_notify_truncated_v1()

-- create_users_truncated_trigger --
-- Fires when users is truncated (with CASCADE, api_tokens fires its own).
CREATE TRIGGER users_truncated
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION auth_notify_truncated_v1()
