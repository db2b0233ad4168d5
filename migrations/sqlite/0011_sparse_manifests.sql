-- Whether a manifest was accepted sparse: it names a child manifest or layer that was not
-- stored in its repository when it was pushed (FEATURE_SPARSE_INDEX, FEATURE_SPARSE_MANIFESTS).
-- The integrity check does not report such a manifest's absent references, whatever the flags
-- say today: what was accepted stays valid after an operator turns the flags off.
ALTER TABLE manifests ADD COLUMN sparse INTEGER NOT NULL DEFAULT 0;
