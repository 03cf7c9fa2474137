-- OAuth2 authorization server. Clients belong to one tenant; the administrator who
-- registered a client (`owner_id`) lends it their rights for client-credentials tokens.
-- Secrets, codes and tokens are stored only as keyed hashes (HMAC-SHA-256): a copy of
-- the database hands out no usable credential. Every token of one grant shares a
-- `family`: a refresh token or code used twice revokes the family.
CREATE TABLE oauth_client (
    id TEXT PRIMARY KEY,                 -- the public client_id
    tenant_id TEXT NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    name BLOB NOT NULL,                  -- sealed: tenant
    secret_index BLOB,                   -- keyed hash of the secret; NULL: a public client
    redirect_uris TEXT NOT NULL,         -- JSON array, matched exactly
    grant_types TEXT NOT NULL,           -- space-separated
    scopes TEXT NOT NULL,                -- space-separated
    created_ms INTEGER NOT NULL
);
CREATE INDEX oauth_client_by_tenant ON oauth_client (tenant_id);

CREATE TABLE oauth_code (
    code_index BLOB PRIMARY KEY,         -- keyed hash of the code
    client_id TEXT NOT NULL REFERENCES oauth_client (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    code_challenge TEXT NOT NULL,        -- PKCE S256
    family TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER
);

CREATE TABLE oauth_token (
    token_index BLOB PRIMARY KEY,        -- keyed hash of the token
    kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    family TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_client (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    grant_type TEXT NOT NULL CHECK (grant_type IN ('authorization_code', 'client_credentials')),
    scopes TEXT NOT NULL,
    issued_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER,                     -- a rotated refresh token
    revoked_ms INTEGER
);
CREATE INDEX oauth_token_by_family ON oauth_token (family);
CREATE INDEX oauth_token_by_user ON oauth_token (user_id, client_id);
