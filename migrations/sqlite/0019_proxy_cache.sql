-- Proxy cache organizations (Quay's `FEATURE_PROXY_CACHE`): the upstream registry one
-- organization caches. At most one per organization; deleting the organization deletes it.
--
-- The credentials are sealed (AES-256-GCM, `src/upstream/sealed.rs`) with the key from
-- `DATABASE_SECRET_KEY`; NULL when the upstream is read anonymously. WITHOUT ROWID keeps
-- `namespace_id` a plain key (not a rowid SQLite would assign), as in PostgreSQL.
CREATE TABLE proxy_cache_configs (
    namespace_id       INTEGER NOT NULL PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    upstream_registry  TEXT    NOT NULL,
    expiration_s       INTEGER NOT NULL,
    insecure           INTEGER NOT NULL DEFAULT 0,
    sealed_username    TEXT,
    sealed_password    TEXT,
    created_at         INTEGER NOT NULL
) WITHOUT ROWID;
