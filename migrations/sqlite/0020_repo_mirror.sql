-- Repository states and mirroring (issue 20): Quay's `changerepostate` and `/mirror` API; see
-- src/mirror/ and src/metadata/mirror.rs.
--
-- A repository's state (NORMAL, READ_ONLY, MIRROR) decides whether its content may change; it
-- is remembered with the repository's other facts under the access generation (0013), so a
-- change moves the generation like a visibility change does.
ALTER TABLE repositories ADD COLUMN state TEXT NOT NULL DEFAULT 'NORMAL';

DROP TRIGGER repositories_access_update;
CREATE TRIGGER repositories_access_update AFTER UPDATE OF public, name, state ON repositories
    BEGIN UPDATE access_generation SET value = value + 1; END;

-- One mirror configuration per repository. Times are milliseconds since the epoch; the
-- password is sealed by src/secretbox.rs and never leaves the server. The key column is
-- BIGINT, not INTEGER, so SQLite does not make it the rowid (it is given, never assigned).
CREATE TABLE repository_mirrors (
    repository_id          BIGINT  NOT NULL PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    is_enabled             INTEGER NOT NULL,
    external_reference     TEXT    NOT NULL,
    robot_id               INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    registry_username      TEXT,
    registry_password      TEXT,
    registry_config        TEXT    NOT NULL,
    rule_value             TEXT    NOT NULL,
    sync_interval          INTEGER NOT NULL,
    sync_start_date        INTEGER NOT NULL,
    sync_expiration_date   INTEGER,
    sync_retries_remaining INTEGER NOT NULL,
    sync_status            TEXT    NOT NULL,
    last_sync_at           INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX repository_mirrors_due ON repository_mirrors (sync_start_date);
