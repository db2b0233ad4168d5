-- Sessions opened inside a single-request (monolithic) push have no client that could resume
-- them; start-up recovery discards them if a crash left them behind.
ALTER TABLE uploads ADD COLUMN resumable INTEGER NOT NULL DEFAULT 1;
