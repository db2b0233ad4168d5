-- See migrations/sqlite/0015_health_probes.sql.
CREATE TABLE health_probes (
    name TEXT COLLATE "C" PRIMARY KEY,
    at   BIGINT NOT NULL
);
