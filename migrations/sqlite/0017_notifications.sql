-- Repository notifications (Quay's `/api/v1/repository/{repo}/notification/`) and their outbox.
--
-- A notification says which event of a repository (`repo_push`, `tag_deleted`) is sent how
-- (`webhook`, `slack`) and where (`config`, JSON text). The `last_*` columns hold the outcome
-- of its latest delivery attempt; `number_of_failures` counts deliveries given up on.
CREATE TABLE repository_notifications (
    uuid               TEXT    NOT NULL PRIMARY KEY,
    repository_id      INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    event              TEXT    NOT NULL,
    method             TEXT    NOT NULL,
    title              TEXT    NOT NULL,
    config             TEXT    NOT NULL,
    event_config       TEXT    NOT NULL,
    number_of_failures INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    last_attempt_at    INTEGER,
    last_status        INTEGER,
    last_error         TEXT,
    last_delivered_at  INTEGER
);
CREATE INDEX repository_notifications_by_repository ON repository_notifications(repository_id, event);

-- The outbox: one row per delivery still to make, written in the transaction of the tag change
-- that caused it, so a delivery is neither lost by a crash nor sent for a change rolled back.
-- A worker claims a row by setting `claim` and `claim_expires_at` in one conditional UPDATE
-- (so two replicas never hold the same row), sends it, and deletes it (delivered or given up)
-- or sets it `due_at` a later attempt.
CREATE TABLE notification_deliveries (
    id                INTEGER PRIMARY KEY,
    notification_uuid TEXT    NOT NULL REFERENCES repository_notifications(uuid) ON DELETE CASCADE,
    event_data        TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    due_at            INTEGER NOT NULL,
    claim             TEXT    NOT NULL DEFAULT '',
    claim_expires_at  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notification_deliveries_by_due ON notification_deliveries(due_at);
CREATE INDEX notification_deliveries_by_notification ON notification_deliveries(notification_uuid);
