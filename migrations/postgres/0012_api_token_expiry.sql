-- API tokens get a public identifier and an expiry, and a new password ends the account's
-- sessions and API tokens; see migrations/sqlite/0012_api_token_expiry.sql.
ALTER TABLE api_tokens ADD COLUMN uuid TEXT;
UPDATE api_tokens SET uuid = gen_random_uuid()::text;
ALTER TABLE api_tokens ALTER COLUMN uuid SET NOT NULL;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_uuid_key UNIQUE (uuid);
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
-- What listing an account's tokens, a password change and an account's deletion look up.
CREATE INDEX api_tokens_by_account ON api_tokens(account_id);
CREATE INDEX sessions_by_account ON sessions(account_id);

CREATE FUNCTION end_sessions_of_old_password() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sessions WHERE account_id = NEW.id;
    DELETE FROM api_tokens WHERE account_id = NEW.id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER accounts_password_ends_sessions AFTER UPDATE OF password_hash ON accounts
    FOR EACH ROW WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash)
    EXECUTE FUNCTION end_sessions_of_old_password();
