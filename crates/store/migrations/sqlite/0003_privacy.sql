-- The privacy policy's versions (privacy.toml, published at start when its content
-- changed) and the version each account accepted at sign-up.
--
-- Nothing here is personal: a version is the operator's policy, and the version number an
-- account accepted is shared by everyone who signed up under it, so it is kept in
-- plaintext beside the account (the account's row goes when the account is erased).

CREATE TABLE policy_version (
    version INTEGER PRIMARY KEY,         -- 1, 2, 3, ... in order of publication
    sha256 TEXT NOT NULL,                -- of the canonical JSON: a new hash is a new version
    material_sha256 TEXT NOT NULL,       -- of the material part (what is collected, why, on
                                         -- what basis, how long, by whom, from what age)
    material INTEGER NOT NULL CHECK (material IN (0, 1)),  -- material_sha256 changed
    published_ms INTEGER NOT NULL,
    content TEXT NOT NULL                -- the canonical JSON of the policy
);

-- Published versions are a record of what people were told: never changed or removed.
CREATE TRIGGER policy_version_no_update BEFORE UPDATE ON policy_version
BEGIN
    SELECT RAISE(ABORT, 'privacy policy versions are append-only');
END;
CREATE TRIGGER policy_version_no_delete BEFORE DELETE ON policy_version
BEGIN
    SELECT RAISE(ABORT, 'privacy policy versions are append-only');
END;

-- NULL for accounts not created by self-service sign-up (administrators, invited users).
ALTER TABLE app_user ADD COLUMN accepted_policy_version INTEGER REFERENCES policy_version (version);
