-- Data-subject requests (GDPR Art. 12-22), restriction of processing (Art. 18) and the
-- notices to recipients (Art. 19).
--
-- A request's requester (email) and what they asked (details) are sealed together: with
-- the person's key when they were signed in, else with the request's own key
-- (`request:<id>`), which is destroyed once the request is closed and its record is no
-- longer needed. What the request is, its status, dates and events stay readable: they
-- are the controller's record that it answered in time.

CREATE TABLE privacy_request (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN
        ('ACCESS', 'PORTABILITY', 'RECTIFICATION', 'ERASURE', 'RESTRICTION', 'OBJECTION')),
    status TEXT NOT NULL CHECK (status IN
        ('RECEIVED', 'VERIFIED', 'IN_PROGRESS', 'COMPLETED', 'REJECTED')),
    user_id TEXT,                        -- set: made by a signed-in person
    tenant_id TEXT,                      -- their tenant: its administrators see the request
    owner TEXT NOT NULL,                 -- the key sealing `requester` and event notes
    requester BLOB NOT NULL,             -- sealed: owner (JSON: email, details)
    email_index BLOB,                    -- no-account requests: keyed hash of the email
    created_ms INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    extended INTEGER NOT NULL DEFAULT 0, -- Art. 12(3): extended once, with a reason
    assignee_id TEXT,
    closed_ms INTEGER,
    shredded_ms INTEGER,                 -- no-account: when the request's own key was destroyed
    code_index BLOB,                     -- no-account: keyed hash of the emailed code
    code_expires_ms INTEGER,
    code_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX privacy_request_by_tenant ON privacy_request (tenant_id, due_ms);
CREATE INDEX privacy_request_by_user ON privacy_request (user_id) WHERE user_id IS NOT NULL;

-- The audit trail: who did what, when. Append-only.
CREATE TABLE privacy_request_event (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES privacy_request (id) ON DELETE CASCADE,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,                 -- a user id, `requester` or `system`
    action TEXT NOT NULL,
    note BLOB                            -- sealed: the request's owner (a reason, a note)
);
CREATE INDEX privacy_request_event_by_request ON privacy_request_event (request_id, id);
CREATE TRIGGER privacy_request_event_no_update BEFORE UPDATE ON privacy_request_event
BEGIN
    SELECT RAISE(ABORT, 'the audit trail of a request is append-only');
END;

-- People whose processing is restricted (Art. 18): their data is kept, not used, not
-- sent to processors, until the restriction is lifted.
CREATE TABLE restriction (
    user_id TEXT PRIMARY KEY,
    since_ms INTEGER NOT NULL
);

-- Notices to processors (Art. 19), delivered by a background job with retries. They name
-- the person by their pseudonymous user id only.
CREATE TABLE recipient_notice (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    processor TEXT NOT NULL,
    url TEXT NOT NULL,
    event TEXT NOT NULL,                 -- rectification, erasure, restriction, restriction_lifted
    payload TEXT NOT NULL,               -- the JSON posted (no personal data)
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL,
    delivered_ms INTEGER,
    last_error TEXT
);
CREATE INDEX recipient_notice_due ON recipient_notice (next_ms) WHERE delivered_ms IS NULL;
CREATE INDEX recipient_notice_by_user ON recipient_notice (user_id);
