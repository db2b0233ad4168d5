-- Quay's usage logs (audit trail): one row per recorded action. Names are stored as text, not
-- as ids, so a record outlives the account or repository it names. `at` is milliseconds since
-- the Unix epoch; `performer` is NULL for anonymous callers; `metadata` is a JSON object.
CREATE TABLE usage_logs (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    at         INTEGER NOT NULL,
    performer  TEXT,
    namespace  TEXT,
    repository TEXT,
    ip         TEXT,
    metadata   TEXT NOT NULL,
    occurrences INTEGER NOT NULL DEFAULT 1
);
-- The listings read newest first by (at, id) within a repository, a namespace, a performer or
-- everything (the superuser's view, and retention's deletions).
CREATE INDEX usage_logs_by_repository ON usage_logs (repository, at, id);
CREATE INDEX usage_logs_by_namespace ON usage_logs (namespace, at, id);
CREATE INDEX usage_logs_by_performer ON usage_logs (performer, at, id);
CREATE INDEX usage_logs_by_time ON usage_logs (at, id);
