-- See migrations/sqlite/0020_repo_mirror.sql.
ALTER TABLE repositories ADD COLUMN state TEXT NOT NULL DEFAULT 'NORMAL';

DROP TRIGGER repositories_access ON repositories;
CREATE TRIGGER repositories_access AFTER INSERT OR DELETE OR UPDATE OF public, name, state ON repositories
    FOR EACH ROW EXECUTE FUNCTION berth_access_changed();

CREATE TABLE repository_mirrors (
    repository_id          BIGINT NOT NULL PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    is_enabled             BIGINT NOT NULL,
    external_reference     TEXT   NOT NULL,
    robot_id               BIGINT REFERENCES accounts(id) ON DELETE SET NULL,
    registry_username      TEXT,
    registry_password      TEXT,
    registry_config        TEXT   NOT NULL,
    rule_value             TEXT   NOT NULL,
    sync_interval          BIGINT NOT NULL,
    sync_start_date        BIGINT NOT NULL,
    sync_expiration_date   BIGINT,
    sync_retries_remaining BIGINT NOT NULL,
    sync_status            TEXT   NOT NULL,
    last_sync_at           BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX repository_mirrors_due ON repository_mirrors (sync_start_date);
