-- The consent ledger and erasures.
--
-- Consent entries are append-only: who, which purpose or cookie category, given or
-- withdrawn, how, under which policy version, when. A signed-in person's entries are sealed
-- with their key (what they chose says something about them); a visitor without an account
-- is a random id from a necessary cookie, and its entries are kept open.
--
-- An erasure destroys the person's key first (everything sealed with it is unreadable at
-- once, backups included) and records a receipt; the rows are purged afterwards, in the
-- background. A person's ledger entries can be deleted only once their account row is gone
-- (the purge after an erasure); a visitor's only by the retention sweep.

CREATE TABLE consent (
    id INTEGER PRIMARY KEY,
    user_id TEXT,                        -- set: a person with an account
    visitor_id TEXT,                     -- set: a visitor, by the id in their consent cookie
    at_ms INTEGER NOT NULL,
    policy_version INTEGER REFERENCES policy_version (version),
    entry BLOB NOT NULL,                 -- sealed: user (purpose, granted, method); visitors: JSON
    CHECK ((user_id IS NULL) <> (visitor_id IS NULL))
);
CREATE INDEX consent_by_user ON consent (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX consent_by_visitor ON consent (visitor_id, id) WHERE visitor_id IS NOT NULL;

CREATE TABLE erasure (
    id TEXT PRIMARY KEY,                 -- the receipt's id
    user_id TEXT NOT NULL,
    tenant_id TEXT,                      -- set: the person's tenant was erased with them
    erased_ms INTEGER NOT NULL,
    purged_ms INTEGER,                   -- set once every row is physically gone
    outcome TEXT NOT NULL,               -- JSON: what went, which keys were destroyed
    receipt TEXT                         -- JSON given to the person; names no personal data
);
CREATE INDEX erasure_unpurged ON erasure (erased_ms) WHERE purged_ms IS NULL;

CREATE TRIGGER consent_no_update BEFORE UPDATE ON consent
BEGIN
    SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;
CREATE TRIGGER consent_no_delete BEFORE DELETE ON consent
WHEN OLD.user_id IS NOT NULL AND EXISTS (SELECT 1 FROM app_user WHERE app_user.id = OLD.user_id)
BEGIN
    SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;

-- The policy version in force when a device was added (the export says which policy
-- covered it).
ALTER TABLE device ADD COLUMN policy_version INTEGER REFERENCES policy_version (version);

-- Retention: a tenant may keep telemetry for less time than the policy says, never more.
CREATE TABLE tenant_retention (
    tenant_id TEXT PRIMARY KEY REFERENCES tenant (id) ON DELETE CASCADE,
    telemetry_days INTEGER NOT NULL CHECK (telemetry_days > 0)
);

-- Each run of the retention sweeper.
CREATE TABLE retention_sweep (
    id INTEGER PRIMARY KEY,
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER NOT NULL,
    tenant_id TEXT,                      -- set: a sweep of one tenant, asked by its administrator
    telemetry_points INTEGER NOT NULL,   -- points deleted
    error TEXT
);
