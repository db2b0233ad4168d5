-- See migrations/sqlite/0021_proxy_pull.sql.
CREATE TRIGGER proxy_cache_configs_access AFTER INSERT OR UPDATE OR DELETE ON proxy_cache_configs
    FOR EACH ROW EXECUTE FUNCTION berth_access_changed();

ALTER TABLE tags ADD COLUMN validated_at BIGINT;
