-- Device provisioning (ThingsBoard's device profiles with a provisioning key and secret).
--
-- The key and the secret are credentials: both are sealed with the tenant's key, and found
-- or checked through keyed hashes only (`key_index` is unique across the installation, so
-- a key reaches exactly one profile, hence one tenant). Profile names are sealed like
-- device names.

CREATE TABLE device_profile (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    name_index BLOB NOT NULL,            -- keyed hash of (tenant, name): unique per tenant
    name BLOB NOT NULL,                  -- sealed: tenant
    provision_type TEXT NOT NULL CHECK (provision_type IN
        ('DISABLED', 'ALLOW_CREATE_NEW_DEVICES', 'CHECK_PRE_PROVISIONED_DEVICES')),
    key_index BLOB UNIQUE,               -- keyed hash of the provisioning key
    provision_key BLOB,                  -- sealed: tenant
    secret_index BLOB,                   -- keyed hash of (key, secret): how a secret is checked
    provision_secret BLOB,               -- sealed: tenant (shown to the tenant's administrators)
    created_ms INTEGER NOT NULL,
    UNIQUE (tenant_id, name_index)
);

-- The profile a device belongs to, and whether it has fetched its credentials through
-- provisioning (ThingsBoard's `provisionState` = "provisioned").
ALTER TABLE device ADD COLUMN device_profile_id TEXT REFERENCES device_profile (id) ON DELETE SET NULL;
ALTER TABLE device ADD COLUMN provisioned INTEGER NOT NULL DEFAULT 0 CHECK (provisioned IN (0, 1));
CREATE INDEX device_by_profile ON device (device_profile_id) WHERE device_profile_id IS NOT NULL;
