-- Signature trust (issue 19): the keys an organization or repository trusts, its trust policy,
-- and the stored verdict of every signed manifest; see src/metadata/trust.rs.
--
-- Keys and policies name their scope by text: `namespace`, and `repository` (the repository's
-- full name) or '' for the namespace itself. Deleting the repository or the namespace's account
-- removes them (triggers below). Every change to either moves the access generation (0013), so
-- each replica's cached "policy in force" is decided again at its next request.
CREATE TABLE trust_keys (
    id          TEXT    NOT NULL PRIMARY KEY,
    namespace   TEXT    NOT NULL,
    repository  TEXT    NOT NULL DEFAULT '',
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    material    TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    UNIQUE (namespace, repository, name)
);

CREATE TABLE trust_policies (
    namespace  TEXT    NOT NULL,
    repository TEXT    NOT NULL DEFAULT '',
    require    TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, repository)
);

-- The trust generation: moved by every key added or removed anywhere, so every stored verdict
-- computed before is stale.
CREATE TABLE trust_generation (value INTEGER NOT NULL);
INSERT INTO trust_generation (value) VALUES (0);

CREATE TRIGGER trust_keys_generation_insert AFTER INSERT ON trust_keys
    BEGIN UPDATE trust_generation SET value = value + 1; END;
CREATE TRIGGER trust_keys_generation_delete AFTER DELETE ON trust_keys
    BEGIN UPDATE trust_generation SET value = value + 1; END;

CREATE TRIGGER trust_keys_access_insert AFTER INSERT ON trust_keys
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER trust_keys_access_update AFTER UPDATE ON trust_keys
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER trust_keys_access_delete AFTER DELETE ON trust_keys
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER trust_policies_access_insert AFTER INSERT ON trust_policies
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER trust_policies_access_update AFTER UPDATE ON trust_policies
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER trust_policies_access_delete AFTER DELETE ON trust_policies
    BEGIN UPDATE access_generation SET value = value + 1; END;

-- A repository's or namespace's keys and policies go with it.
CREATE TRIGGER repositories_trust_delete AFTER DELETE ON repositories
BEGIN
    DELETE FROM trust_keys WHERE repository = OLD.name;
    DELETE FROM trust_policies WHERE repository = OLD.name;
END;
CREATE TRIGGER accounts_trust_delete AFTER DELETE ON accounts
BEGIN
    DELETE FROM trust_keys WHERE namespace = OLD.name;
    DELETE FROM trust_policies WHERE namespace = OLD.name;
END;

-- One row per signed manifest (the subject) of a repository. `version` is moved by the triggers
-- on `manifests` whenever a signature of the subject is stored, deleted or gets its
-- `signed_digest`; a verdict is current when `verified_version = version` and `generation` is
-- the trust generation. Until first computed, a row says `untrusted` (signatures exist, none
-- is known to verify). `keys` is a JSON list of key names, `checks` the JSON of every check.
CREATE TABLE signature_verdicts (
    repository_id    INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest           TEXT    NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1,
    verified_version INTEGER NOT NULL DEFAULT 0,
    generation       INTEGER NOT NULL DEFAULT 0,
    status           TEXT    NOT NULL DEFAULT 'untrusted',
    keys             TEXT    NOT NULL DEFAULT '[]',
    checks           TEXT    NOT NULL DEFAULT '[]',
    computed_at      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX signature_verdicts_by_computed ON signature_verdicts(computed_at);

CREATE TRIGGER manifests_signature_insert AFTER INSERT ON manifests
WHEN NEW.kind = 'signature' AND NEW.signed_digest IS NOT NULL
BEGIN
    INSERT INTO signature_verdicts (repository_id, digest)
    VALUES (NEW.repository_id, NEW.signed_digest)
    ON CONFLICT (repository_id, digest) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER manifests_signature_signs AFTER UPDATE OF signed_digest ON manifests
WHEN NEW.kind = 'signature' AND NEW.signed_digest IS NOT OLD.signed_digest
BEGIN
    UPDATE signature_verdicts SET version = version + 1
    WHERE repository_id = OLD.repository_id AND digest = OLD.signed_digest;
    INSERT INTO signature_verdicts (repository_id, digest)
    SELECT NEW.repository_id, NEW.signed_digest WHERE NEW.signed_digest IS NOT NULL
    ON CONFLICT (repository_id, digest) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER manifests_signature_delete AFTER DELETE ON manifests
WHEN OLD.kind = 'signature' AND OLD.signed_digest IS NOT NULL
BEGIN
    UPDATE signature_verdicts SET version = version + 1
    WHERE repository_id = OLD.repository_id AND digest = OLD.signed_digest;
END;

-- Signatures that name their type only in the config's media type (notation 1.3, cosign's
-- referrers) were recorded as plain artifacts before berth read that field.
UPDATE manifests SET kind = 'signature'
WHERE kind = 'artifact' AND artifact_type IS NULL AND config_media_type IN (
    'application/vnd.cncf.notary.signature',
    'application/vnd.dev.cosign.artifact.sig.v1+json',
    'application/vnd.dev.sigstore.bundle.v0.3+json');

-- The signatures stored before this migration: their subjects' verdicts, to compute.
INSERT INTO signature_verdicts (repository_id, digest)
SELECT DISTINCT repository_id, signed_digest FROM manifests
WHERE kind = 'signature' AND signed_digest IS NOT NULL;
