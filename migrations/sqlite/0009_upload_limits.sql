-- Who opened each upload session ("account:<id>" or "address:<client address>"), so the
-- sessions open at once can be limited per account and per repository (MAX_UPLOADS_PER_*).
-- Sessions opened before this migration have none and count only for their repository.
ALTER TABLE uploads ADD COLUMN owner TEXT;
CREATE INDEX uploads_by_owner ON uploads(owner) WHERE owner IS NOT NULL;
CREATE INDEX uploads_by_repository ON uploads(repository_id);
