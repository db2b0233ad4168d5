-- When an API token was last used (milliseconds since the Unix epoch; NULL: never), as Quay's
-- `last_accessed`. Written at most once a minute per token, so using a token stays a read.
ALTER TABLE api_tokens ADD COLUMN last_accessed INTEGER;
-- What removing tokens long expired looks up.
CREATE INDEX api_tokens_by_expiry ON api_tokens(expires_at) WHERE expires_at IS NOT NULL;
