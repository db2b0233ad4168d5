-- `/health/endtoend` writes a row here, reads it back and deletes it: a real write and read of
-- the metadata database that touches nothing else. One row per probe in flight at most.
CREATE TABLE health_probes (
    name TEXT NOT NULL PRIMARY KEY,
    at   INTEGER NOT NULL
);
