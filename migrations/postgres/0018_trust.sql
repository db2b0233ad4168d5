-- See migrations/sqlite/0018_trust.sql.
CREATE TABLE trust_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    namespace   TEXT COLLATE "C" NOT NULL,
    repository  TEXT COLLATE "C" NOT NULL DEFAULT '',
    name        TEXT COLLATE "C" NOT NULL,
    kind        TEXT   NOT NULL,
    material    TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    UNIQUE (namespace, repository, name)
);

CREATE TABLE trust_policies (
    namespace  TEXT COLLATE "C" NOT NULL,
    repository TEXT COLLATE "C" NOT NULL DEFAULT '',
    require    TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, repository)
);

CREATE TABLE trust_generation (value BIGINT NOT NULL);
INSERT INTO trust_generation (value) VALUES (0);

CREATE FUNCTION berth_trust_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE trust_generation SET value = value + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER trust_keys_generation AFTER INSERT OR DELETE ON trust_keys
    FOR EACH ROW EXECUTE FUNCTION berth_trust_keys_changed();
CREATE TRIGGER trust_keys_access AFTER INSERT OR UPDATE OR DELETE ON trust_keys
    FOR EACH ROW EXECUTE FUNCTION berth_access_changed();
CREATE TRIGGER trust_policies_access AFTER INSERT OR UPDATE OR DELETE ON trust_policies
    FOR EACH ROW EXECUTE FUNCTION berth_access_changed();

CREATE FUNCTION berth_repository_trust_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM trust_keys WHERE repository = OLD.name;
    DELETE FROM trust_policies WHERE repository = OLD.name;
    RETURN NULL;
END
$$;
CREATE TRIGGER repositories_trust_delete AFTER DELETE ON repositories
    FOR EACH ROW EXECUTE FUNCTION berth_repository_trust_deleted();

CREATE FUNCTION berth_account_trust_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM trust_keys WHERE namespace = OLD.name;
    DELETE FROM trust_policies WHERE namespace = OLD.name;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_trust_delete AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION berth_account_trust_deleted();

CREATE TABLE signature_verdicts (
    repository_id    BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest           TEXT COLLATE "C" NOT NULL,
    version          BIGINT NOT NULL DEFAULT 1,
    verified_version BIGINT NOT NULL DEFAULT 0,
    generation       BIGINT NOT NULL DEFAULT 0,
    status           TEXT   NOT NULL DEFAULT 'untrusted',
    keys             TEXT   NOT NULL DEFAULT '[]',
    checks           TEXT   NOT NULL DEFAULT '[]',
    computed_at      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX signature_verdicts_by_computed ON signature_verdicts(computed_at);

-- Moves the signature version of the subject(s) a signature manifest row signed and signs.
CREATE FUNCTION berth_signature_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.kind = 'signature' AND OLD.signed_digest IS NOT NULL
       AND (TG_OP = 'DELETE' OR NEW.signed_digest IS DISTINCT FROM OLD.signed_digest) THEN
        UPDATE signature_verdicts SET version = version + 1
        WHERE repository_id = OLD.repository_id AND digest = OLD.signed_digest;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.kind = 'signature' AND NEW.signed_digest IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.signed_digest IS DISTINCT FROM OLD.signed_digest) THEN
        INSERT INTO signature_verdicts (repository_id, digest)
        VALUES (NEW.repository_id, NEW.signed_digest)
        ON CONFLICT (repository_id, digest)
        DO UPDATE SET version = signature_verdicts.version + 1;
    END IF;
    RETURN NULL;
END
$$;
-- WHEN clauses: a push of anything but a signature runs no function.
CREATE TRIGGER manifests_signature_insert AFTER INSERT ON manifests
    FOR EACH ROW WHEN (NEW.kind = 'signature' AND NEW.signed_digest IS NOT NULL)
    EXECUTE FUNCTION berth_signature_changed();
CREATE TRIGGER manifests_signature_signs AFTER UPDATE OF signed_digest ON manifests
    FOR EACH ROW WHEN (NEW.kind = 'signature' AND NEW.signed_digest IS DISTINCT FROM OLD.signed_digest)
    EXECUTE FUNCTION berth_signature_changed();
CREATE TRIGGER manifests_signature_delete AFTER DELETE ON manifests
    FOR EACH ROW WHEN (OLD.kind = 'signature' AND OLD.signed_digest IS NOT NULL)
    EXECUTE FUNCTION berth_signature_changed();

-- Signatures that name their type only in the config's media type (notation 1.3, cosign's
-- referrers) were recorded as plain artifacts before berth read that field.
UPDATE manifests SET kind = 'signature'
WHERE kind = 'artifact' AND artifact_type IS NULL AND config_media_type IN (
    'application/vnd.cncf.notary.signature',
    'application/vnd.dev.cosign.artifact.sig.v1+json',
    'application/vnd.dev.sigstore.bundle.v0.3+json');

INSERT INTO signature_verdicts (repository_id, digest)
SELECT DISTINCT repository_id, signed_digest FROM manifests
WHERE kind = 'signature' AND signed_digest IS NOT NULL;
