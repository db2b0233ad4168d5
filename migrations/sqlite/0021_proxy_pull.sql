-- Pull-through proxy cache (issue 20): see src/proxy/.
--
-- Whether a namespace is a proxy cache decides who may pull from it and that nothing may be
-- pushed into it; it is remembered with the other authorization decisions under the access
-- generation (0013), so creating or deleting a configuration moves the generation.
CREATE TRIGGER proxy_cache_configs_access_insert AFTER INSERT ON proxy_cache_configs
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER proxy_cache_configs_access_update AFTER UPDATE ON proxy_cache_configs
    BEGIN UPDATE access_generation SET value = value + 1; END;
CREATE TRIGGER proxy_cache_configs_access_delete AFTER DELETE ON proxy_cache_configs
    BEGIN UPDATE access_generation SET value = value + 1; END;

-- When the proxy last confirmed a cached tag against its upstream (milliseconds since the
-- epoch); NULL for every tag not written by the proxy. In the database, so every replica
-- agrees on a tag's staleness; the row goes with its tag.
ALTER TABLE tags ADD COLUMN validated_at INTEGER;
