-- See migrations/sqlite/0019_proxy_cache.sql.
CREATE TABLE proxy_cache_configs (
    namespace_id       BIGINT NOT NULL PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    upstream_registry  TEXT COLLATE "C" NOT NULL,
    expiration_s       BIGINT NOT NULL,
    insecure           BIGINT NOT NULL DEFAULT 0,
    sealed_username    TEXT,
    sealed_password    TEXT,
    created_at         BIGINT NOT NULL
);
