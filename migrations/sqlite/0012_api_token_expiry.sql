-- API tokens get what Quay's application-specific tokens have: a public identifier (`uuid`,
-- how the API, the dashboard and the CLI name a token without its secret) and an expiry
-- (`expires_at`, milliseconds since the Unix epoch like every time here; NULL: never).
-- SQLite cannot add a NOT NULL UNIQUE column, so the table is rebuilt; nothing references it.
-- Tokens made before get a random identifier.
CREATE TABLE api_tokens_rebuilt (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    uuid        TEXT    NOT NULL UNIQUE,
    expires_at  INTEGER
);
INSERT INTO api_tokens_rebuilt (id, account_id, name, token_hash, created_at, uuid)
    SELECT id, account_id, name, token_hash, created_at,
           lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(2))
                 || '-' || hex(randomblob(2)) || '-' || hex(randomblob(6)))
    FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_rebuilt RENAME TO api_tokens;
-- What listing an account's tokens, a password change and an account's deletion look up.
CREATE INDEX api_tokens_by_account ON api_tokens(account_id);
CREATE INDEX sessions_by_account ON sessions(account_id);

-- A new password ends what the old one opened: the account's dashboard sessions and API
-- tokens go in the statement that sets it, whichever path (CLI, API, dashboard) set it.
CREATE TRIGGER accounts_password_ends_sessions AFTER UPDATE OF password_hash ON accounts
WHEN OLD.password_hash IS NOT NEW.password_hash
BEGIN
    DELETE FROM sessions WHERE account_id = NEW.id;
    DELETE FROM api_tokens WHERE account_id = NEW.id;
END;
