-- Dashboard sign-in sessions. Only a SHA-256 (hex) of the cookie value is stored, so a copy
-- of the database does not let anyone sign in.
CREATE TABLE sessions (
    token_hash  TEXT    PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- The token every form of this session must carry (CSRF protection).
    csrf        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);
