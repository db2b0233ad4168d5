-- Repository mirror sync (issue 20): the last sync's log (JSON: its outcome, per-tag results and
-- errors, blobs and bytes copied; bounded by src/mirror/sync.rs), shown by the API and the
-- dashboard.
ALTER TABLE repository_mirrors ADD COLUMN last_sync_log TEXT;
