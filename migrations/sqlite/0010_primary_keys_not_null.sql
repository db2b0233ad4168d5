-- no-transaction
-- Primary keys are never NULL, as on PostgreSQL.
--
-- Unlike the SQL standard (and PostgreSQL, see migrations/postgres), SQLite lets a PRIMARY KEY
-- column that is not the rowid hold NULL, and any number of rows may do so, since NULLs are
-- never equal. tests/schema_equivalence.rs found seven such keys (a text primary key without
-- NOT NULL); this declares them NOT NULL. SQLite cannot add a constraint to a column, so each
-- table is rebuilt under its own name, columns in the same order, its indexes recreated. As in
-- 0008, foreign keys must be off while a table others reference (blobs, manifest_contents) is
-- dropped, which SQLite allows only outside a transaction: this migration opens its own, and
-- every step can run again after a crash before sqlx records the migration.
--
-- A row whose key is NULL is left behind: no lookup (they are all by key) could find it, and
-- no other row can reference it (every referencing column is NOT NULL).
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

-- Referenced by repository_blobs(digest).
DROP TABLE IF EXISTS blobs_rebuilt;
CREATE TABLE blobs_rebuilt (
    digest      TEXT    NOT NULL PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    linked_at   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO blobs_rebuilt (digest, size, created_at, linked_at)
    SELECT digest, size, created_at, linked_at FROM blobs WHERE digest IS NOT NULL;
-- Foreign keys are off, so dropping the table deletes none of the rows that reference it; the
-- references name the table, and the rebuilt one takes its name.
DROP TABLE blobs;
ALTER TABLE blobs_rebuilt RENAME TO blobs;

-- Referenced by manifests(digest).
DROP TABLE IF EXISTS manifest_contents_rebuilt;
CREATE TABLE manifest_contents_rebuilt (
    digest      TEXT NOT NULL PRIMARY KEY,
    content     BLOB NOT NULL
);
INSERT INTO manifest_contents_rebuilt (digest, content)
    SELECT digest, content FROM manifest_contents WHERE digest IS NOT NULL;
DROP TABLE manifest_contents;
ALTER TABLE manifest_contents_rebuilt RENAME TO manifest_contents;

DROP TABLE IF EXISTS uploads_rebuilt;
CREATE TABLE uploads_rebuilt (
    id            TEXT    NOT NULL PRIMARY KEY,
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    algorithm     TEXT    NOT NULL,
    length        INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    resumable     INTEGER NOT NULL DEFAULT 1,
    hash_state    BLOB,
    progress      BLOB,
    owner         TEXT
);
INSERT INTO uploads_rebuilt (id, repository_id, algorithm, length, created_at, updated_at,
                             resumable, hash_state, progress, owner)
    SELECT id, repository_id, algorithm, length, created_at, updated_at,
           resumable, hash_state, progress, owner
    FROM uploads WHERE id IS NOT NULL;
DROP TABLE uploads;
ALTER TABLE uploads_rebuilt RENAME TO uploads;
CREATE INDEX uploads_by_owner ON uploads(owner) WHERE owner IS NOT NULL;
CREATE INDEX uploads_by_repository ON uploads(repository_id);

DROP TABLE IF EXISTS signing_keys_rebuilt;
CREATE TABLE signing_keys_rebuilt (
    kid         TEXT    NOT NULL PRIMARY KEY,
    private_pem TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
INSERT INTO signing_keys_rebuilt (kid, private_pem, created_at)
    SELECT kid, private_pem, created_at FROM signing_keys WHERE kid IS NOT NULL;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_rebuilt RENAME TO signing_keys;

DROP TABLE IF EXISTS sessions_rebuilt;
CREATE TABLE sessions_rebuilt (
    token_hash  TEXT    NOT NULL PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    csrf        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
INSERT INTO sessions_rebuilt (token_hash, account_id, csrf, created_at, expires_at)
    SELECT token_hash, account_id, csrf, created_at, expires_at
    FROM sessions WHERE token_hash IS NOT NULL;
DROP TABLE sessions;
ALTER TABLE sessions_rebuilt RENAME TO sessions;
CREATE INDEX sessions_by_expiry ON sessions(expires_at);

DROP TABLE IF EXISTS blob_deletions_rebuilt;
CREATE TABLE blob_deletions_rebuilt (
    digest      TEXT    NOT NULL PRIMARY KEY,
    started_at  INTEGER NOT NULL
);
INSERT INTO blob_deletions_rebuilt (digest, started_at)
    SELECT digest, started_at FROM blob_deletions WHERE digest IS NOT NULL;
DROP TABLE blob_deletions;
ALTER TABLE blob_deletions_rebuilt RENAME TO blob_deletions;

DROP TABLE IF EXISTS leases_rebuilt;
CREATE TABLE leases_rebuilt (
    name        TEXT    NOT NULL PRIMARY KEY,
    holder      TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL
);
INSERT INTO leases_rebuilt (name, holder, expires_at)
    SELECT name, holder, expires_at FROM leases WHERE name IS NOT NULL;
DROP TABLE leases;
ALTER TABLE leases_rebuilt RENAME TO leases;

COMMIT;
PRAGMA foreign_keys = ON;
