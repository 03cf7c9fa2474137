-- Devices may authenticate with an X.509 certificate (ThingsBoard's X509_CERTIFICATE):
-- `token_index` is then the keyed hash of the certificate's SHA-256 fingerprint (its own
-- hash domain, so no token can equal a certificate), `credentials` the sealed PEM.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.
CREATE TABLE device_credentials_new (
    device_id TEXT PRIMARY KEY REFERENCES device (id) ON DELETE CASCADE,
    credentials_type TEXT NOT NULL CHECK (credentials_type IN ('ACCESS_TOKEN', 'X509_CERTIFICATE')),
    token_index BLOB NOT NULL UNIQUE,    -- keyed hash of the token or certificate fingerprint
    credentials BLOB NOT NULL            -- sealed: tenant (shown to the device's owner)
);
INSERT INTO device_credentials_new (device_id, credentials_type, token_index, credentials)
    SELECT device_id, credentials_type, token_index, credentials FROM device_credentials;
DROP TABLE device_credentials;
ALTER TABLE device_credentials_new RENAME TO device_credentials;
