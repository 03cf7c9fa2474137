-- Retention of the records the server keeps (sessions, visitors' consents, closed
-- requests, audit events, disclosures) and what each sweep deleted.

-- What a sweep deleted per record: JSON {"login_history": 3, ...}.
ALTER TABLE retention_sweep ADD COLUMN records TEXT NOT NULL DEFAULT '{}';

-- Where the audit chain starts once its oldest events were deleted by retention: the seq
-- and hash of the last deleted event (the next event's prev_hash), and its time. One row;
-- it only moves forward.
CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    at_ms INTEGER NOT NULL,              -- the last deleted event's time
    swept_ms INTEGER NOT NULL            -- when the sweep deleted up to it
);
CREATE TRIGGER audit_anchor_forward BEFORE UPDATE ON audit_anchor
WHEN NEW.seq <= OLD.seq
BEGIN
    SELECT RAISE(ABORT, 'the audit anchor only moves forward');
END;
CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
BEGIN
    SELECT RAISE(ABORT, 'the audit anchor is kept');
END;

-- Audit events may be deleted only up to the anchor (retention); never after it.
DROP TRIGGER audit_no_delete;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_event
WHEN OLD.seq > COALESCE((SELECT seq FROM audit_anchor WHERE id = 1), 0)
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- The cut of the last retention sweep per record: a disclosure older than it may go.
CREATE TABLE retention_cut (
    record TEXT PRIMARY KEY,
    before_ms INTEGER NOT NULL
) WITHOUT ROWID;

DROP TRIGGER disclosure_no_delete;
CREATE TRIGGER disclosure_no_delete BEFORE DELETE ON disclosure
WHEN EXISTS (SELECT 1 FROM app_user WHERE app_user.id = OLD.subject_id)
 AND OLD.at_ms >= COALESCE((SELECT before_ms FROM retention_cut WHERE record = 'disclosures'), 0)
BEGIN
    SELECT RAISE(ABORT, 'the disclosure log is append-only');
END;

-- Anonymised aggregates of telemetry past its retention, for categories whose policy
-- keeps them (`aggregate = "hourly"`): per key and hour (its start, ms), across every
-- device of every tenant, numeric values only. Nothing names a device, owner or tenant.
CREATE TABLE telemetry_aggregate (
    key TEXT NOT NULL,
    hour_ms INTEGER NOT NULL,
    count INTEGER NOT NULL CHECK (count > 0),
    min REAL NOT NULL,
    max REAL NOT NULL,
    sum REAL NOT NULL,
    PRIMARY KEY (key, hour_ms)
) WITHOUT ROWID;

-- The audit chain is keyed: each new event's link is an HMAC with the key store's
-- audit-chain key (`keyed` = 1), so changing an event and re-computing the hashes needs
-- the key store too. Events recorded before stay plain SHA-256 links (0); the store
-- appends a keyed event after them at its next start, which pins them.
ALTER TABLE audit_event ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0;

-- The policy version in force when each telemetry batch was received (the export says
-- which policy covered each point). A plain integer, no foreign key: the ingest path
-- stays one insert.
ALTER TABLE telemetry_log ADD COLUMN policy_version INTEGER;
ALTER TABLE telemetry ADD COLUMN policy_version INTEGER;
