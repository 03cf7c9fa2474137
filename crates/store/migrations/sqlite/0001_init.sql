-- Thingsafe schema, SQLite.
-- Columns of type BLOB named after a personal field hold it sealed (XChaCha20-Poly1305)
-- with the data key of the owner named in the comment; `*_index` columns hold keyed
-- hashes (HMAC-SHA-256) for lookups. No personal field, token or password is stored in
-- plaintext.

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE tenant (
    id TEXT PRIMARY KEY,
    title BLOB NOT NULL,                 -- sealed: tenant
    created_ms INTEGER NOT NULL
);

CREATE TABLE customer (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    title BLOB NOT NULL,                 -- sealed: customer
    created_ms INTEGER NOT NULL
);
CREATE INDEX customer_by_tenant ON customer (tenant_id);

CREATE TABLE app_user (
    id TEXT PRIMARY KEY,
    tenant_id TEXT REFERENCES tenant (id) ON DELETE CASCADE,       -- NULL: system admin
    customer_id TEXT REFERENCES customer (id) ON DELETE CASCADE,   -- set: customer user
    authority TEXT NOT NULL CHECK (authority IN ('SYS_ADMIN', 'TENANT_ADMIN', 'CUSTOMER_USER')),
    email_index BLOB NOT NULL UNIQUE,
    email BLOB NOT NULL,                 -- sealed: user
    first_name BLOB,                     -- sealed: user
    last_name BLOB,                      -- sealed: user
    birth_date BLOB,                     -- sealed: user
    password BLOB,                       -- sealed: user (an Argon2id PHC string)
    activation_index BLOB UNIQUE,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER,
    created_ms INTEGER NOT NULL
);
CREATE INDEX app_user_by_tenant ON app_user (tenant_id, customer_id);

CREATE TABLE session (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    refresh_index BLOB NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE INDEX session_by_user ON session (user_id);

CREATE TABLE device (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    customer_id TEXT REFERENCES customer (id) ON DELETE SET NULL,
    name_index BLOB NOT NULL,            -- keyed hash of (tenant, name): names are unique per tenant
    name BLOB NOT NULL,                  -- sealed: tenant
    device_type TEXT NOT NULL,
    label BLOB,                          -- sealed: tenant
    created_ms INTEGER NOT NULL,
    UNIQUE (tenant_id, name_index)
);
CREATE INDEX device_by_tenant ON device (tenant_id, customer_id);

CREATE TABLE device_credentials (
    device_id TEXT PRIMARY KEY REFERENCES device (id) ON DELETE CASCADE,
    credentials_type TEXT NOT NULL CHECK (credentials_type IN ('ACCESS_TOKEN')),
    token_index BLOB NOT NULL UNIQUE,    -- keyed hash of the token: how devices are found
    credentials BLOB NOT NULL            -- sealed: tenant (shown to the device's owner)
);

-- Telemetry arrives in `telemetry_log`: one row per device message, its points sealed
-- together with the key of the device's data owner when they arrived (`owner` names that
-- key: a tenant, or the customer the device was assigned to). The log has no secondary
-- index, so a commit only appends at the table's end: measured, a per-device index here
-- cut ingest from 90k to 32k messages/s. A background flush moves the log into
-- `telemetry` chunks, one per device and owner per flush, found by (device, time).
-- Erasing an owner shreds its key: its rows in both tables are unreadable at once.
CREATE TABLE telemetry_log (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES device (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    ts_min INTEGER NOT NULL,
    ts_max INTEGER NOT NULL,
    points BLOB NOT NULL                 -- sealed: owner
);

CREATE TABLE telemetry (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES device (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    ts_min INTEGER NOT NULL,
    ts_max INTEGER NOT NULL,
    points BLOB NOT NULL                 -- sealed: owner
);
CREATE INDEX telemetry_by_device_time ON telemetry (device_id, ts_max);

-- The newest value of each telemetry key of a device, for "latest values" reads.
CREATE TABLE telemetry_latest (
    device_id TEXT NOT NULL REFERENCES device (id) ON DELETE CASCADE,
    key_index BLOB NOT NULL,             -- keyed hash of (device, key)
    owner TEXT NOT NULL,
    ts INTEGER NOT NULL,
    entry BLOB NOT NULL,                 -- sealed: owner (key and value)
    PRIMARY KEY (device_id, key_index)
) WITHOUT ROWID;

-- Attributes: CLIENT_SCOPE (from the device), SHARED_SCOPE (to the device), SERVER_SCOPE.
CREATE TABLE attribute (
    device_id TEXT NOT NULL REFERENCES device (id) ON DELETE CASCADE,
    scope TEXT NOT NULL CHECK (scope IN ('CLIENT_SCOPE', 'SHARED_SCOPE', 'SERVER_SCOPE')),
    key_index BLOB NOT NULL,             -- keyed hash of (device, scope, key)
    owner TEXT NOT NULL,
    last_update_ms INTEGER NOT NULL,
    entry BLOB NOT NULL,                 -- sealed: owner (key and value)
    PRIMARY KEY (device_id, scope, key_index)
) WITHOUT ROWID;
