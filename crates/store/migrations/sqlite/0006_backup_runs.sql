-- Runs of scheduled backups (data and key-store), for the system administrator
-- (GET /api/admin/backups). A run is inserted as 'running' when it starts and finished as
-- 'ok' or 'failed'; one still 'running' when the server starts was interrupted (the server
-- stopped or crashed mid-way) and is marked so: never mistaken for a good backup.
CREATE TABLE backup_run (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('data', 'keys')),
    attempt INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    bytes INTEGER,
    file TEXT,
    error TEXT
);
CREATE INDEX backup_run_started ON backup_run (started_ms);
