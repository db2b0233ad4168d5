-- no-transaction
-- Repository ids are never reused, and a repository's tag history goes with it.
--
-- Without AUTOINCREMENT SQLite gives a new row the highest id in use plus one, so deleting the
-- newest repository handed its id to the next one created, and the deleted repository's tag
-- history (keyed by id, with no foreign key) became the new repository's, readable and
-- restorable by its owner. AUTOINCREMENT needs the table rebuilt, and rebuilding a table that
-- others reference needs foreign keys off, which SQLite allows only outside a transaction: so
-- this migration opens its own. Every step can run again after a crash before sqlx records
-- the migration.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

-- The triggers name tag_history and tags; they come back below with their new condition.
DROP TRIGGER IF EXISTS tags_record_deletion;
DROP TRIGGER IF EXISTS tags_record_move;

DROP TABLE IF EXISTS repositories_rebuilt;
CREATE TABLE repositories_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    public      INTEGER NOT NULL DEFAULT 0,
    description TEXT    NOT NULL DEFAULT ''
);
INSERT INTO repositories_rebuilt (id, name, created_at, public, description)
    SELECT id, name, created_at, public, description FROM repositories;
-- Foreign keys are off, so dropping the table deletes none of the rows that reference it; the
-- references name the table, and the rebuilt one takes its name.
DROP TABLE repositories;
ALTER TABLE repositories_rebuilt RENAME TO repositories;

-- Ids a deleted repository had, which history may still name, stay retired too.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'repositories', 0
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'repositories');
UPDATE sqlite_sequence
SET seq = max(seq,
              (SELECT coalesce(max(id), 0) FROM repositories),
              (SELECT coalesce(max(repository_id), 0) FROM tag_history))
WHERE name = 'repositories';

-- History gets a foreign key to its repository. Entries of deleted repositories go now, and so
-- do those older than the repository that holds their id today: they belong to a deleted one
-- whose id was reused.
DROP TABLE IF EXISTS tag_history_rebuilt;
CREATE TABLE tag_history_rebuilt (
    id              INTEGER PRIMARY KEY,
    repository_id   INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    manifest_digest TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    ended_at        INTEGER NOT NULL
);
INSERT INTO tag_history_rebuilt (id, repository_id, name, manifest_digest, started_at, ended_at)
    SELECT h.id, h.repository_id, h.name, h.manifest_digest, h.started_at, h.ended_at
    FROM tag_history h JOIN repositories r ON r.id = h.repository_id
    WHERE h.started_at >= r.created_at;
DROP TABLE tag_history;
ALTER TABLE tag_history_rebuilt RENAME TO tag_history;
CREATE INDEX tag_history_by_tag ON tag_history(repository_id, name, ended_at);
CREATE INDEX tag_history_by_manifest ON tag_history(repository_id, manifest_digest);
CREATE INDEX tag_history_by_end ON tag_history(ended_at);

-- As in 0007, and only while the repository exists: when a repository is deleted outright its
-- tags go through the cascade after it, and their history would name no repository.
CREATE TRIGGER tags_record_deletion AFTER DELETE ON tags
WHEN EXISTS (SELECT 1 FROM manifests m
    WHERE m.repository_id = OLD.repository_id AND m.digest = OLD.manifest_digest)
  AND EXISTS (SELECT 1 FROM repositories r WHERE r.id = OLD.repository_id)
BEGIN
    INSERT INTO tag_history (repository_id, name, manifest_digest, started_at, ended_at)
    VALUES (OLD.repository_id, OLD.name, OLD.manifest_digest, OLD.updated_at,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER tags_record_move AFTER UPDATE OF manifest_digest ON tags
WHEN OLD.manifest_digest <> NEW.manifest_digest
BEGIN
    INSERT INTO tag_history (repository_id, name, manifest_digest, started_at, ended_at)
    VALUES (OLD.repository_id, OLD.name, OLD.manifest_digest, OLD.updated_at, NEW.updated_at);
END;

COMMIT;
PRAGMA foreign_keys = ON;
