-- ThingsBoard's persistent RPC: commands to a device kept until it takes them, answers or
-- they expire, then kept `[records.rpc_calls]` of the policy (ThingsBoard's `sql.ttl.rpc`).
--
-- `request` (method, params, additionalInfo) and `response` are sealed with the tenant's
-- key (AAD `rpc.request/<id>`, `rpc.response/<id>`): they may hold personal data. The rows
-- go with their device and tenant (ON DELETE CASCADE), so erasure's purge reaches them.

CREATE TABLE IF NOT EXISTS rpc (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,                  -- order of submission, per installation
    tenant_id TEXT NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES device (id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    oneway INTEGER NOT NULL CHECK (oneway IN (0, 1)),
    retries INTEGER NOT NULL,              -- deliveries allowed after the first
    attempts INTEGER NOT NULL DEFAULT 0,   -- times sent to the device
    request_id INTEGER NOT NULL,           -- the $id of v1/devices/me/rpc/request/$id
    status TEXT NOT NULL CHECK (status IN
        ('QUEUED', 'SENT', 'DELIVERED', 'SUCCESSFUL', 'TIMEOUT', 'EXPIRED', 'FAILED')),
    request BLOB NOT NULL,                 -- sealed: tenant
    response BLOB,                         -- sealed: tenant
    finished_ms INTEGER                    -- when it reached a final status
);
CREATE INDEX IF NOT EXISTS rpc_device ON rpc (device_id, seq);
CREATE INDEX IF NOT EXISTS rpc_pending ON rpc (status) WHERE finished_ms IS NULL;
CREATE INDEX IF NOT EXISTS rpc_finished ON rpc (finished_ms) WHERE finished_ms IS NOT NULL;
