-- A counter that every change to who may do what moves, in the transaction that makes the
-- change; see migrations/postgres/0013_access_generation.sql. SQLite triggers fire per row
-- and per event, hence one per table and event.
CREATE TABLE access_generation (value INTEGER NOT NULL);
INSERT INTO access_generation (value) VALUES (0);

CREATE TRIGGER accounts_access_insert AFTER INSERT ON accounts
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER accounts_access_update AFTER UPDATE ON accounts
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER accounts_access_delete AFTER DELETE ON accounts
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER teams_access_insert AFTER INSERT ON teams
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER teams_access_update AFTER UPDATE ON teams
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER teams_access_delete AFTER DELETE ON teams
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER team_members_access_insert AFTER INSERT ON team_members
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER team_members_access_update AFTER UPDATE ON team_members
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER team_members_access_delete AFTER DELETE ON team_members
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER repository_permissions_access_insert AFTER INSERT ON repository_permissions
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER repository_permissions_access_update AFTER UPDATE ON repository_permissions
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER repository_permissions_access_delete AFTER DELETE ON repository_permissions
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER repositories_access_insert AFTER INSERT ON repositories
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER repositories_access_delete AFTER DELETE ON repositories
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER repositories_access_update AFTER UPDATE OF public, name ON repositories
    BEGIN UPDATE access_generation SET value = value + 1; END;
