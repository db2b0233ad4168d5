-- What berth learned about each manifest when it was pushed, so listings need not re-parse.
ALTER TABLE manifests ADD COLUMN kind TEXT NOT NULL DEFAULT 'artifact';
ALTER TABLE manifests ADD COLUMN total_size INTEGER NOT NULL DEFAULT 0;
-- The manifest this one signs, attests or describes (its subject, or the digest named by a
-- cosign tag such as sha256-<hex>.sig).
ALTER TABLE manifests ADD COLUMN signed_digest TEXT;
-- Kind-specific facts as JSON: platforms, encryption schemes, compression, Helm chart fields.
ALTER TABLE manifests ADD COLUMN details TEXT;
CREATE INDEX manifests_by_signed ON manifests(repository_id, signed_digest)
    WHERE signed_digest IS NOT NULL;
