-- Tenant-level scheduled exports: a tenant administrator opts in (daily or weekly); each
-- run is recorded; the files (sealed with the tenant's key) live in data/exports/.
CREATE TABLE tenant_export_schedule (
    tenant_id TEXT PRIMARY KEY REFERENCES tenant (id) ON DELETE CASCADE,
    schedule TEXT NOT NULL CHECK (schedule IN ('daily', 'weekly')),
    keep INTEGER NOT NULL CHECK (keep BETWEEN 1 AND 30),
    updated_ms INTEGER NOT NULL
);

CREATE TABLE tenant_export (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    bytes INTEGER,
    error TEXT
);
CREATE INDEX tenant_export_by_tenant ON tenant_export (tenant_id, started_ms);
