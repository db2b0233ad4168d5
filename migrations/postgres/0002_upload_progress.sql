-- Upload sessions carry their hash state and the blob store's progress (an object store's
-- multipart upload id and parts), so any replica can continue an upload another one began.
ALTER TABLE uploads ADD COLUMN hash_state BYTEA;
ALTER TABLE uploads ADD COLUMN progress BYTEA;
