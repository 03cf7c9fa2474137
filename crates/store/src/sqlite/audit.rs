//! The audit log (table `audit_event`): appended by the one writer, so each event's
//! sequence number and `prev_hash` are read and written in the same transaction.

use rusqlite::{Connection, OptionalExtension, Row, params};
use thingsafe_core::Owner;
use thingsafe_vault::{Vault, VaultError};

use super::SqliteStore;
use super::rows::{aad, parse_id};
use crate::records::{
    AuditEvent, AuditFilter, GENESIS, NewAuditEvent, PersonalPart, SealedAuditEvent,
};
use crate::{Result, Scope, StoreError};

const FIELD: &str = "audit.personal";

const COLUMNS: &str = "seq, at_ms, tenant_id, actor_id, action, target, details, sealed_for, personal, prev_hash, hash, keyed";

fn read(r: &Row) -> rusqlite::Result<SealedAuditEvent> {
    Ok(SealedAuditEvent {
        seq: r.get(0)?,
        at_ms: r.get(1)?,
        tenant: r.get(2)?,
        actor: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        details: r.get(6)?,
        sealed_for: r.get(7)?,
        personal: r.get(8)?,
        prev_hash: r.get(9)?,
        hash: r.get(10)?,
        keyed: r.get(11)?,
    })
}

pub(super) async fn append(store: &SqliteStore, event: NewAuditEvent) -> Result<i64> {
    let vault = store.vault.clone();
    store
        .writer
        .write(move |c| append_row(c, &vault, event))
        .await
}

/// Appends `event` after the newest one, its link keyed with the key store's audit-chain
/// key; returns its seq. Runs inside the writer's transaction.
fn append_row(c: &Connection, vault: &Vault, event: NewAuditEvent) -> Result<i64> {
    let last: Option<(i64, Vec<u8>)> = c
        .query_row(
            "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_vec()),
    };
    let (sealed_for, personal) = match &event.personal {
        None => (None, None),
        Some((owner, value)) => {
            let bytes = serde_json::to_vec(value).expect("JSON serialises");
            match vault.seal(*owner, aad(FIELD, &seq.to_string()).as_bytes(), &bytes) {
                Ok(sealed) => (Some(owner.key_name()), Some(sealed)),
                // The person is already erased: nothing about them is kept.
                Err(VaultError::KeyDestroyed(..)) => (None, None),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let mut row = SealedAuditEvent {
        seq,
        at_ms: event.at_ms,
        tenant: event.tenant.map(|t| t.to_string()),
        actor: event.actor.map(|a| a.to_string()),
        action: event.action,
        target: event.target,
        details: event.details.to_string(),
        sealed_for,
        personal,
        prev_hash,
        hash: Vec::new(),
        keyed: true,
    };
    row.hash = row
        .link_mac(vault.audit_chain_key(), &row.prev_hash)
        .to_vec();
    c.execute(
        &format!(
            "INSERT INTO audit_event ({COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ),
        params![
            row.seq,
            row.at_ms,
            row.tenant,
            row.actor,
            row.action,
            row.target,
            row.details,
            row.sealed_for,
            row.personal,
            row.prev_hash,
            row.hash,
            row.keyed
        ],
    )?;
    Ok(seq)
}

/// The action of the event that keys a chain recorded before links were keyed.
pub const CHAIN_KEYED: &str = "audit.chain_keyed";

/// At open: records in the key store (once) the first event whose link must be keyed, and
/// returns it. When the newest event's link is plain (recorded before the chain was
/// keyed), appends a keyed event after it: its HMAC covers the plain events' last hash.
pub(super) fn key_the_chain(c: &Connection, vault: &Vault) -> Result<i64> {
    let newest: Option<(i64, bool)> = c
        .query_row(
            "SELECT seq, keyed FROM audit_event ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let keyed_from = vault.audit_chain_keyed_from(newest.map_or(1, |(seq, _)| seq + 1))?;
    if let Some((seq, false)) = newest
        && seq < keyed_from
    {
        let tx = c.unchecked_transaction()?;
        append_row(
            &tx,
            vault,
            NewAuditEvent {
                at_ms: thingsafe_core::now_ms(),
                tenant: None,
                actor: None,
                action: CHAIN_KEYED.into(),
                target: None,
                details: serde_json::json!({"link": "HMAC-SHA256 with the key store's audit-chain key", "keyedFrom": keyed_from}),
                personal: None,
            },
        )?;
        tx.commit()?;
    }
    Ok(keyed_from)
}

/// The link `event` must carry with this installation's key: keyed from the seq the key
/// store recorded (whatever the row says), plain before it unless the row is keyed.
pub(super) fn link(store: &SqliteStore, event: &SealedAuditEvent, prev: &[u8]) -> [u8; 32] {
    let key = store.vault.audit_chain_key();
    if event.keyed || event.seq >= store.audit_keyed_from {
        event.link_mac(key, prev)
    } else {
        event.link_hash(prev)
    }
}

/// Events in the scope (a tenant's own, or all for the system), oldest first.
pub(super) async fn events(
    store: &SqliteStore,
    scope: &Scope,
    filter: &AuditFilter,
) -> Result<Vec<AuditEvent>> {
    let tenant = match scope {
        Scope::System => None,
        Scope::Tenant(t) => Some(t.to_string()),
        Scope::Customer { .. } => {
            return Err(StoreError::Forbidden(
                "the audit log is for administrators".into(),
            ));
        }
    };
    let filter = filter.clone();
    let rows = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM audit_event
                 WHERE (?1 IS NULL OR tenant_id = ?1)
                   AND (?2 IS NULL OR at_ms >= ?2) AND (?3 IS NULL OR at_ms <= ?3)
                   AND (?4 IS NULL OR action = ?4) AND (?5 IS NULL OR actor_id = ?5)
                 ORDER BY seq LIMIT ?6"
            ))?;
            let rows = stmt
                .query_map(
                    params![
                        tenant,
                        filter.from_ms,
                        filter.to_ms,
                        filter.action,
                        filter.actor.map(|a| a.to_string()),
                        filter.limit as i64
                    ],
                    read,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    rows.into_iter().map(|row| open(store, row)).collect()
}

fn open(store: &SqliteStore, row: SealedAuditEvent) -> Result<AuditEvent> {
    let (personal, personal_part) = match (&row.sealed_for, &row.personal) {
        (Some(owner), Some(sealed)) => {
            let owner: Owner = owner.parse().map_err(StoreError::Backend)?;
            match store
                .vault
                .unseal(owner, aad(FIELD, &row.seq.to_string()).as_bytes(), sealed)
            {
                Ok(bytes) => {
                    let value = serde_json::from_slice(&bytes).map_err(|e| {
                        StoreError::Backend(format!("audit event {} does not parse: {e}", row.seq))
                    })?;
                    (Some(value), PersonalPart::Readable)
                }
                Err(VaultError::KeyDestroyed(..)) => (None, PersonalPart::Erased),
                Err(e) => return Err(e.into()),
            }
        }
        _ => (None, PersonalPart::None),
    };
    let details = serde_json::from_str(&row.details)
        .map_err(|e| StoreError::Backend(format!("audit event {} does not parse: {e}", row.seq)))?;
    Ok(AuditEvent {
        seq: row.seq,
        at_ms: row.at_ms,
        tenant_id: row.tenant.as_deref().map(parse_id).transpose()?,
        actor_id: row.actor.as_deref().map(parse_id).transpose()?,
        action: row.action,
        target: row.target,
        details,
        personal,
        personal_part,
    })
}

/// Up to `limit` stored events after `after_seq`, in order, as stored.
pub(super) async fn chain(
    store: &SqliteStore,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<SealedAuditEvent>> {
    store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit_event WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![after_seq, limit as i64], read)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
}
