-- A repository's tag history goes with it; see migrations/sqlite/0008_repository_ids.sql.
-- Identity columns never hand out an id twice, so ids were never reused here; entries older
-- than the repository holding their id are removed all the same, as on SQLite.
DELETE FROM tag_history h
WHERE NOT EXISTS (SELECT 1 FROM repositories r
                  WHERE r.id = h.repository_id AND h.started_at >= r.created_at);

ALTER TABLE tag_history
    ADD CONSTRAINT tag_history_repository_id_fkey
    FOREIGN KEY (repository_id) REFERENCES repositories(id) ON DELETE CASCADE;

-- As in 0003, and only while the repository exists: when a repository is deleted outright its
-- tags go through the cascade after it, and their history would name no repository.
CREATE OR REPLACE FUNCTION record_tag_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT 1 FROM manifests m
                   WHERE m.repository_id = OLD.repository_id AND m.digest = OLD.manifest_digest)
           AND EXISTS (SELECT 1 FROM repositories r WHERE r.id = OLD.repository_id) THEN
            INSERT INTO tag_history (repository_id, name, manifest_digest, started_at, ended_at)
            VALUES (OLD.repository_id, OLD.name, OLD.manifest_digest, OLD.updated_at,
                    (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.manifest_digest <> NEW.manifest_digest THEN
        INSERT INTO tag_history (repository_id, name, manifest_digest, started_at, ended_at)
        VALUES (OLD.repository_id, OLD.name, OLD.manifest_digest, OLD.updated_at, NEW.updated_at);
    END IF;
    RETURN NEW;
END
$$;
