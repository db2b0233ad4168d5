-- Accounts and access control, after Quay's model.
-- A namespace is a user or an organization; robots belong to a namespace and are named
-- "<namespace>+<name>".
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    kind          TEXT    NOT NULL CHECK (kind IN ('user', 'organization', 'robot')),
    -- argon2 PHC string for users; NULL for organizations and robots.
    password_hash TEXT,
    -- SHA-256 (hex) of a robot's token; tokens are random, so a fast hash is enough.
    token_hash    TEXT UNIQUE,
    email         TEXT,
    superuser     INTEGER NOT NULL DEFAULT 0,
    -- The namespace a robot belongs to.
    namespace_id  INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL
);

CREATE TABLE teams (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('member', 'creator', 'admin')),
    description TEXT    NOT NULL DEFAULT '',
    UNIQUE (org_id, name)
);

CREATE TABLE team_members (
    team_id    INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, account_id)
);
CREATE INDEX team_members_by_account ON team_members(account_id);

ALTER TABLE repositories ADD COLUMN public INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repositories ADD COLUMN description TEXT NOT NULL DEFAULT '';

-- A role on a repository, granted to a user, robot or team.
CREATE TABLE repository_permissions (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    account_id    INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    team_id       INTEGER REFERENCES teams(id) ON DELETE CASCADE,
    role          TEXT    NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    CHECK ((account_id IS NULL) <> (team_id IS NULL))
);
CREATE UNIQUE INDEX repository_permissions_account ON repository_permissions(repository_id, account_id)
    WHERE account_id IS NOT NULL;
CREATE UNIQUE INDEX repository_permissions_team ON repository_permissions(repository_id, team_id)
    WHERE team_id IS NOT NULL;

-- Bearer tokens for the management API, stored as SHA-256 (hex).
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- Keys that sign registry tokens; every replica reads the same ones.
CREATE TABLE signing_keys (
    kid         TEXT    PRIMARY KEY,
    private_pem TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
