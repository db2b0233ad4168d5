-- Garbage collection.
-- When a blob was last linked to a repository: a blob referenced by no manifest survives a
-- grace period after its last link (an image's layers are pushed before its manifest).
ALTER TABLE blobs ADD COLUMN linked_at INTEGER NOT NULL DEFAULT 0;
UPDATE blobs SET linked_at = created_at;

-- Digests whose bytes garbage collection is deleting right now. A push of the same digest
-- waits until the entry is gone, then writes the bytes again.
CREATE TABLE blob_deletions (
    digest      TEXT    PRIMARY KEY,
    started_at  INTEGER NOT NULL
);

-- Where tags used to point: a deleted or moved tag can be restored until DEFAULT_TAG_EXPIRATION
-- has passed, and keeps its manifest from being collected until then. Triggers record every
-- deletion and move, whichever statement makes it. No foreign keys: a manifest or repository
-- deleted outright takes its tags with it through cascades, and the history left behind is
-- ignored (it names no manifest) and removed by the next collection.
CREATE TABLE tag_history (
    id              INTEGER PRIMARY KEY,
    repository_id   INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    manifest_digest TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    ended_at        INTEGER NOT NULL
);
CREATE INDEX tag_history_by_tag ON tag_history(repository_id, name, ended_at);
CREATE INDEX tag_history_by_manifest ON tag_history(repository_id, manifest_digest);
CREATE INDEX tag_history_by_end ON tag_history(ended_at);

CREATE TRIGGER tags_record_deletion AFTER DELETE ON tags
WHEN EXISTS (SELECT 1 FROM manifests m
    WHERE m.repository_id = OLD.repository_id AND m.digest = OLD.manifest_digest)
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

-- Leases that let one process (of several replicas) run a job at a time.
CREATE TABLE leases (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL
);
