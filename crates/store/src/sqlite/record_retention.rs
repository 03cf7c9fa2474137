//! Retention of the records the server keeps about what happened: ended sessions (the
//! login history), visitors' cookie choices, closed requests, the oldest audit events and
//! old disclosures, finished persistent RPC commands, in one write transaction; the audit log keeps an anchor so the
//! chain that remains still verifies.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use thingsafe_core::policy::{
    AUDIT_EVENTS, CLOSED_REQUESTS, DISCLOSURES, LOGIN_HISTORY, RPC_CALLS, VISITOR_CONSENTS,
};
use thingsafe_core::{TimestampMs, now_ms};

use super::SqliteStore;
use crate::records::AuditAnchor;
use crate::{RecordCuts, Result};

pub(super) async fn expire(
    store: &SqliteStore,
    cuts: &RecordCuts,
) -> Result<BTreeMap<String, u64>> {
    // A no-account request's own key goes before its row (normally long before: the
    // hourly shredder destroys it 90 days after closing).
    if let Some(cut) = cuts.closed_requests {
        super::requests::shred_closed(store, cut).await?;
    }
    let cuts = cuts.clone();
    store
        .writer
        .write(move |c| {
            let mut deleted = BTreeMap::new();
            if let Some(cut) = cuts.login_history {
                // A session ended when it was revoked or expired, whichever came first.
                let n = c.execute(
                    "DELETE FROM session WHERE MIN(expires_ms, COALESCE(revoked_ms, expires_ms)) < ?1",
                    [cut],
                )?;
                deleted.insert(LOGIN_HISTORY.to_string(), n as u64);
            }
            if let Some(cut) = cuts.visitor_consents {
                let n = c.execute(
                    "DELETE FROM consent WHERE visitor_id IS NOT NULL AND at_ms < ?1",
                    [cut],
                )?;
                deleted.insert(VISITOR_CONSENTS.to_string(), n as u64);
            }
            if let Some(cut) = cuts.closed_requests {
                // Their audit trails go with them (ON DELETE CASCADE).
                let n = c.execute(
                    "DELETE FROM privacy_request WHERE closed_ms IS NOT NULL AND closed_ms < ?1",
                    [cut],
                )?;
                deleted.insert(CLOSED_REQUESTS.to_string(), n as u64);
            }
            if let Some(cut) = cuts.disclosures {
                c.execute(
                    "INSERT INTO retention_cut (record, before_ms) VALUES (?1, ?2)
                     ON CONFLICT (record) DO UPDATE SET before_ms = MAX(before_ms, excluded.before_ms)",
                    params![DISCLOSURES, cut],
                )?;
                let n = c.execute("DELETE FROM disclosure WHERE at_ms < ?1", [cut])?;
                deleted.insert(DISCLOSURES.to_string(), n as u64);
            }
            if let Some(cut) = cuts.rpc_calls {
                let n = c.execute(
                    "DELETE FROM rpc WHERE finished_ms IS NOT NULL AND finished_ms < ?1",
                    [cut],
                )?;
                deleted.insert(RPC_CALLS.to_string(), n as u64);
            }
            if let Some(cut) = cuts.audit_events {
                let n = expire_audit(c, cut)?;
                deleted.insert(AUDIT_EVENTS.to_string(), n);
            }
            Ok(deleted)
        })
        .await
}

/// Deletes the oldest audit events made before `cut` (the longest run from the start, so
/// the rest stays one chain), never the newest event; moves the anchor to the last one
/// deleted first, which is what allows the deletion (a trigger).
fn expire_audit(c: &Connection, cut: TimestampMs) -> Result<u64> {
    let newest: Option<i64> = c.query_row("SELECT MAX(seq) FROM audit_event", [], |r| r.get(0))?;
    let Some(newest) = newest else {
        return Ok(0);
    };
    let first_kept: Option<i64> = c.query_row(
        "SELECT MIN(seq) FROM audit_event WHERE at_ms >= ?1",
        [cut],
        |r| r.get(0),
    )?;
    let last_gone = first_kept.unwrap_or(newest).min(newest) - 1;
    let anchor: Option<(i64, Vec<u8>, i64)> = c
        .query_row(
            "SELECT seq, hash, at_ms FROM audit_event WHERE seq = ?1",
            [last_gone],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((seq, hash, at_ms)) = anchor else {
        return Ok(0);
    };
    c.execute(
        "INSERT INTO audit_anchor (id, seq, hash, at_ms, swept_ms) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
             at_ms = excluded.at_ms, swept_ms = excluded.swept_ms",
        params![seq, hash, at_ms, now_ms()],
    )?;
    let n = c.execute("DELETE FROM audit_event WHERE seq <= ?1", [seq])?;
    Ok(n as u64)
}

pub(super) async fn audit_anchor(store: &SqliteStore) -> Result<Option<AuditAnchor>> {
    store
        .readers
        .read(|c| {
            Ok(c.query_row(
                "SELECT seq, hash, at_ms, swept_ms FROM audit_anchor WHERE id = 1",
                [],
                |r| {
                    Ok(AuditAnchor {
                        seq: r.get(0)?,
                        hash: r.get(1)?,
                        at_ms: r.get(2)?,
                        swept_ms: r.get(3)?,
                    })
                },
            )
            .optional()?)
        })
        .await
}
