-- Accountability records: the audit log, the disclosure log, the breach register and the
-- tenants' classification of their telemetry keys.

-- The audit log: append-only and hash-chained. Each event's `hash` is
-- SHA-256(prev_hash || the canonical bytes of the event as stored), so a changed, inserted
-- or removed row breaks the chain at that row. What the event says about a person
-- (`personal`) is sealed with that person's (or tenant's) data key, named by `sealed_for`:
-- erasing them destroys the key, the bytes stay, the chain still verifies, and nobody can
-- read that part again.
CREATE TABLE audit_event (
    seq INTEGER PRIMARY KEY,             -- 1, 2, 3, ... in order of recording
    at_ms INTEGER NOT NULL,
    tenant_id TEXT,                      -- set: the event concerns this tenant
    actor_id TEXT,                       -- the user who acted; NULL: the server itself or a stranger
    action TEXT NOT NULL,                -- e.g. auth.login, device.create, breach.record
    target TEXT,                         -- what it was done to, e.g. device:<id>
    details TEXT NOT NULL,               -- JSON, nothing personal
    sealed_for TEXT,                     -- the data key that seals `personal` (user:<id>, tenant:<id>)
    personal BLOB,                       -- sealed JSON: what the event says about the person
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX audit_by_tenant ON audit_event (tenant_id, at_ms) WHERE tenant_id IS NOT NULL;
CREATE INDEX audit_by_time ON audit_event (at_ms);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_event
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_event
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Every disclosure of a person's data to a processor or third party: who the data was
-- about, which categories (fideslang), to whom, why, when. Append-only while the person's
-- account exists, like the consent ledger.
CREATE TABLE disclosure (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    tenant_id TEXT,
    subject_id TEXT NOT NULL,            -- the person (a user id)
    recipient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    categories TEXT NOT NULL             -- JSON array of fideslang data categories
);
CREATE INDEX disclosure_by_subject ON disclosure (subject_id, at_ms);
CREATE INDEX disclosure_by_time ON disclosure (at_ms);

CREATE TRIGGER disclosure_no_update BEFORE UPDATE ON disclosure
BEGIN
    SELECT RAISE(ABORT, 'the disclosure log is append-only');
END;
CREATE TRIGGER disclosure_no_delete BEFORE DELETE ON disclosure
WHEN EXISTS (SELECT 1 FROM app_user WHERE app_user.id = OLD.subject_id)
BEGIN
    SELECT RAISE(ABORT, 'the disclosure log is append-only');
END;

-- The breach register (GDPR Art. 33(5)): facts, effects, remedial action. A breach is
-- never deleted; once recorded only the authority's notification may be added, once.
CREATE TABLE breach (
    id TEXT PRIMARY KEY,
    tenant_id TEXT,                      -- NULL: the whole installation
    nature TEXT NOT NULL,
    categories TEXT NOT NULL,            -- JSON array of fideslang data categories
    approx_subjects INTEGER NOT NULL CHECK (approx_subjects >= 0),
    consequences TEXT NOT NULL,
    measures TEXT NOT NULL,
    detected_ms INTEGER NOT NULL,
    recorded_ms INTEGER NOT NULL,
    recorded_by TEXT,                    -- the user who recorded it
    authority_notified_ms INTEGER,
    authority_reference TEXT
);
CREATE INDEX breach_by_tenant ON breach (tenant_id, detected_ms);

CREATE TRIGGER breach_no_delete BEFORE DELETE ON breach
BEGIN
    SELECT RAISE(ABORT, 'the breach register keeps every breach');
END;
CREATE TRIGGER breach_facts_fixed BEFORE UPDATE ON breach
WHEN OLD.authority_notified_ms IS NOT NULL
  OR NEW.id IS NOT OLD.id OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.nature IS NOT OLD.nature
  OR NEW.categories IS NOT OLD.categories OR NEW.approx_subjects IS NOT OLD.approx_subjects
  OR NEW.consequences IS NOT OLD.consequences OR NEW.measures IS NOT OLD.measures
  OR NEW.detected_ms IS NOT OLD.detected_ms OR NEW.recorded_ms IS NOT OLD.recorded_ms
  OR NEW.recorded_by IS NOT OLD.recorded_by
BEGIN
    SELECT RAISE(ABORT, 'a recorded breach is not changed; only the authority notification is added, once');
END;

-- Each affected person told of a breach (GDPR Art. 34).
CREATE TABLE breach_notification (
    breach_id TEXT NOT NULL REFERENCES breach (id),
    user_id TEXT NOT NULL,
    notified_ms INTEGER NOT NULL,
    PRIMARY KEY (breach_id, user_id)
) WITHOUT ROWID;

-- A tenant's classification of its telemetry keys: key → fideslang data category. Key
-- names are sealed with the tenant's key like telemetry's; found by a keyed hash.
CREATE TABLE telemetry_classification (
    tenant_id TEXT NOT NULL REFERENCES tenant (id) ON DELETE CASCADE,
    key_index BLOB NOT NULL,
    key BLOB NOT NULL,                   -- sealed: tenant
    category TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key_index)
) WITHOUT ROWID;
