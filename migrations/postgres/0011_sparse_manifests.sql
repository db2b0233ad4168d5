-- Whether a manifest was accepted sparse; see migrations/sqlite/0011_sparse_manifests.sql.
ALTER TABLE manifests ADD COLUMN sparse BIGINT NOT NULL DEFAULT 0;
