-- Password resets by emailed link: the token is stored only as a keyed hash; single use,
-- short-lived.
CREATE TABLE password_reset (
    token_index BLOB PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER
);
CREATE INDEX password_reset_by_user ON password_reset (user_id);
