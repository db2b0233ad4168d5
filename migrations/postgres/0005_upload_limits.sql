-- Who opened each upload session; see migrations/sqlite/0009_upload_limits.sql.
ALTER TABLE uploads ADD COLUMN owner TEXT;
CREATE INDEX uploads_by_owner ON uploads(owner) WHERE owner IS NOT NULL;
CREATE INDEX uploads_by_repository ON uploads(repository_id);
