-- A counter that every change to who may do what moves, in the transaction that makes the
-- change: accounts (passwords, robot tokens, deletion), teams and their members, repository
-- grants, and repositories appearing, disappearing or changing visibility. Each replica
-- remembers its permission decisions only for the value it read before deciding, so the
-- first request after such a commit, on any replica, decides again from the new rows.
CREATE TABLE access_generation (value BIGINT NOT NULL);
INSERT INTO access_generation (value) VALUES (0);

CREATE FUNCTION berth_access_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE access_generation SET value = value + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER accounts_access AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION berth_access_changed();
CREATE TRIGGER teams_access AFTER INSERT OR UPDATE OR DELETE ON teams
    FOR EACH ROW EXECUTE FUNCTION berth_access_changed();
CREATE TRIGGER team_members_access AFTER INSERT OR UPDATE OR DELETE ON team_members
    FOR EACH ROW EXECUTE FUNCTION berth_access_changed();
CREATE TRIGGER repository_permissions_access AFTER INSERT OR UPDATE OR DELETE ON repository_permissions
    FOR EACH ROW EXECUTE FUNCTION berth_access_changed();
-- Per row, not per statement: a push's `INSERT ... ON CONFLICT DO NOTHING` of a repository that
-- exists changes nothing and must not move the counter (nor wait on its row lock). Not on
-- every update of a repository either: a description edit changes no one's rights.
CREATE TRIGGER repositories_access AFTER INSERT OR DELETE OR UPDATE OF public, name ON repositories
    FOR EACH ROW EXECUTE FUNCTION berth_access_changed();
