-- When an API token was last used; see migrations/sqlite/0014_api_token_last_accessed.sql.
ALTER TABLE api_tokens ADD COLUMN last_accessed BIGINT;
CREATE INDEX api_tokens_by_expiry ON api_tokens(expires_at) WHERE expires_at IS NOT NULL;
