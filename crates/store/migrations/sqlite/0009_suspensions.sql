-- Devices, device types and tenants an administrator suspended: refused at connect and
-- dropped if connected, until the suspension is lifted. `target` is the device id, the
-- device type, or the tenant id.
CREATE TABLE suspension (
    kind TEXT NOT NULL CHECK (kind IN ('device', 'type', 'tenant')),
    tenant_id TEXT NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, tenant_id, target)
);
