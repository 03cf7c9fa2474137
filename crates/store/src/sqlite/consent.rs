//! The consent ledger (append-only: triggers refuse updates, and deletions while the
//! person's account exists) and the login history read from sessions.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use thingsafe_core::{Owner, UserId};
use thingsafe_vault::Vault;

use super::SqliteStore;
use super::rows::aad;
use crate::{ConsentRecord, ConsentSubject, Result, SessionRecord, StoreError};

/// What a ledger row holds beyond its time and policy version (sealed for a person).
#[derive(Serialize, Deserialize)]
struct Entry {
    purpose: String,
    granted: bool,
    method: String,
}

const FIELD: &str = "consent.entry";

/// The entry's JSON: kept open for a visitor, sealed for a person.
fn entry_json(record: &ConsentRecord) -> Vec<u8> {
    serde_json::to_vec(&Entry {
        purpose: record.purpose.clone(),
        granted: record.granted,
        method: record.method.clone(),
    })
    .expect("a consent entry serialises")
}

fn seal_entry(vault: &Vault, user: UserId, record: &ConsentRecord) -> Result<Vec<u8>> {
    Ok(vault.seal(
        Owner::User(user),
        aad(FIELD, &user.to_string()).as_bytes(),
        &entry_json(record),
    )?)
}

/// Appends `records` of a person inside the caller's transaction.
pub(super) fn insert_for_user(
    c: &Connection,
    vault: &Vault,
    user: UserId,
    records: &[ConsentRecord],
) -> Result<()> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO consent (user_id, at_ms, policy_version, entry) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for record in records {
        let sealed = seal_entry(vault, user, record)?;
        stmt.execute(params![
            user.to_string(),
            record.at_ms,
            record.policy_version,
            sealed
        ])?;
    }
    Ok(())
}

pub(super) async fn record(
    store: &SqliteStore,
    subject: ConsentSubject,
    records: Vec<ConsentRecord>,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let vault = store.vault.clone();
    store
        .writer
        .write(move |c| match subject {
            ConsentSubject::User(user) => {
                let known: bool = c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM app_user WHERE id = ?1)",
                    [user.to_string()],
                    |r| r.get(0),
                )?;
                if !known {
                    return Err(StoreError::NotFound("user"));
                }
                insert_for_user(c, &vault, user, &records)
            }
            ConsentSubject::Visitor(visitor) => {
                let mut stmt = c.prepare_cached(
                    "INSERT INTO consent (visitor_id, at_ms, policy_version, entry)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for record in &records {
                    stmt.execute(params![
                        visitor.to_string(),
                        record.at_ms,
                        record.policy_version,
                        entry_json(record)
                    ])?;
                }
                Ok(())
            }
        })
        .await
}

pub(super) async fn history(
    store: &SqliteStore,
    subject: ConsentSubject,
) -> Result<Vec<ConsentRecord>> {
    let (column, id) = match subject {
        ConsentSubject::User(u) => ("user_id", u.to_string()),
        ConsentSubject::Visitor(v) => ("visitor_id", v.to_string()),
    };
    let rows: Vec<(i64, Option<u32>, Vec<u8>)> = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT at_ms, policy_version, entry FROM consent WHERE {column} = ?1 ORDER BY id"
            ))?;
            let rows = stmt
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    rows.into_iter()
        .map(|(at_ms, policy_version, entry)| {
            let bytes = match subject {
                ConsentSubject::User(user) => store.vault.unseal(
                    Owner::User(user),
                    aad(FIELD, &user.to_string()).as_bytes(),
                    &entry,
                )?,
                ConsentSubject::Visitor(_) => entry,
            };
            let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| {
                StoreError::Backend(format!("a consent ledger entry does not parse: {e}"))
            })?;
            Ok(ConsentRecord {
                purpose: entry.purpose,
                granted: entry.granted,
                method: entry.method,
                policy_version,
                at_ms,
            })
        })
        .collect()
}

pub(super) async fn sessions_of(store: &SqliteStore, user: UserId) -> Result<Vec<SessionRecord>> {
    store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT created_ms, expires_ms, revoked_ms FROM session
                 WHERE user_id = ?1 ORDER BY created_ms DESC",
            )?;
            let rows = stmt
                .query_map([user.to_string()], |r| {
                    Ok(SessionRecord {
                        created_ms: r.get(0)?,
                        expires_ms: r.get(1)?,
                        revoked_ms: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
}
