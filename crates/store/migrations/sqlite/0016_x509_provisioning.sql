-- X.509 provisioning (ThingsBoard's X509_CERTIFICATE_CHAIN device profiles): a device whose
-- certificate chain holds the profile's CA certificate is found, or created, by the name
-- the profile's pattern takes from its certificate's Common Name.
--
-- For such a profile `key_index` is the keyed hash of the CA certificate's fingerprint
-- (unique across the installation: a CA reaches one profile, hence one tenant), the sealed
-- key is the fingerprint and the sealed secret the CA certificate in PEM; `secret_index`
-- stays NULL, so the key-and-secret provisioning request never matches it.
--
-- SQLite cannot change a CHECK constraint in place: the table is made anew (migrations run
-- with foreign keys off, and are checked before they commit).

CREATE TABLE device_profile_new (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    name_index BLOB NOT NULL,
    name BLOB NOT NULL,
    provision_type TEXT NOT NULL CHECK (provision_type IN
        ('DISABLED', 'ALLOW_CREATE_NEW_DEVICES', 'CHECK_PRE_PROVISIONED_DEVICES',
         'X509_CERTIFICATE_CHAIN')),
    key_index BLOB UNIQUE,
    provision_key BLOB,
    secret_index BLOB,
    provision_secret BLOB,
    x509_pattern BLOB,                   -- sealed: tenant; the Common Name pattern
    x509_allow_create INTEGER NOT NULL DEFAULT 0 CHECK (x509_allow_create IN (0, 1)),
    created_ms INTEGER NOT NULL,
    UNIQUE (tenant_id, name_index),
    CHECK ((provision_type = 'X509_CERTIFICATE_CHAIN') = (x509_pattern IS NOT NULL))
);

INSERT INTO device_profile_new (id, tenant_id, name_index, name, provision_type, key_index,
        provision_key, secret_index, provision_secret, created_ms)
    SELECT id, tenant_id, name_index, name, provision_type, key_index, provision_key,
        secret_index, provision_secret, created_ms
    FROM device_profile;

DROP TABLE device_profile;
ALTER TABLE device_profile_new RENAME TO device_profile;
