//! The breach register (tables `breach`, `breach_notification`). A tenant administrator
//! reaches their tenant's breaches; the system administrator every breach, including those
//! of the whole installation (no tenant).

use rusqlite::{OptionalExtension, params};
use thingsafe_core::{TimestampMs, UserId};

use super::SqliteStore;
use super::rows::parse_id;
use crate::records::{Breach, BreachNotification, NewBreach};
use crate::{Result, Scope, StoreError};

const COLUMNS: &str = "id, tenant_id, nature, categories, approx_subjects, consequences, measures,
    detected_ms, recorded_ms, recorded_by, authority_notified_ms, authority_reference";

/// The tenant a scope's breaches are confined to; `None`: all (the system administrator).
fn confined(scope: &Scope) -> Result<Option<String>> {
    match scope {
        Scope::System => Ok(None),
        Scope::Tenant(t) => Ok(Some(t.to_string())),
        Scope::Customer { .. } => Err(StoreError::Forbidden(
            "the breach register is for administrators".into(),
        )),
    }
}

fn read(r: &rusqlite::Row) -> rusqlite::Result<BreachRow> {
    Ok(BreachRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        nature: r.get(2)?,
        categories: r.get(3)?,
        approx_subjects: r.get(4)?,
        consequences: r.get(5)?,
        measures: r.get(6)?,
        detected_ms: r.get(7)?,
        recorded_ms: r.get(8)?,
        recorded_by: r.get(9)?,
        authority_notified_ms: r.get(10)?,
        authority_reference: r.get(11)?,
    })
}

struct BreachRow {
    id: String,
    tenant: Option<String>,
    nature: String,
    categories: String,
    approx_subjects: i64,
    consequences: String,
    measures: String,
    detected_ms: i64,
    recorded_ms: i64,
    recorded_by: Option<String>,
    authority_notified_ms: Option<i64>,
    authority_reference: Option<String>,
}

impl BreachRow {
    fn open(self) -> Result<Breach> {
        Ok(Breach {
            id: parse_id(&self.id)?,
            tenant_id: self.tenant.as_deref().map(parse_id).transpose()?,
            nature: self.nature,
            categories: serde_json::from_str(&self.categories).map_err(|e| {
                StoreError::Backend(format!("a breach's categories do not parse: {e}"))
            })?,
            approx_subjects: self.approx_subjects as u64,
            consequences: self.consequences,
            measures: self.measures,
            detected_ms: self.detected_ms,
            recorded_ms: self.recorded_ms,
            recorded_by: self.recorded_by.as_deref().map(parse_id).transpose()?,
            authority_notified_ms: self.authority_notified_ms,
            authority_reference: self.authority_reference,
        })
    }
}

pub(super) async fn record(
    store: &SqliteStore,
    scope: &Scope,
    breach: NewBreach,
) -> Result<Breach> {
    match (confined(scope)?, breach.tenant) {
        (None, _) => {}
        (Some(own), Some(t)) if own == t.to_string() => {}
        _ => {
            return Err(StoreError::Forbidden(
                "a tenant administrator records breaches of their own tenant".into(),
            ));
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let recorded_ms = thingsafe_core::now_ms();
    let found = id.clone();
    store
        .writer
        .write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO breach ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, NULL)"
                ),
                params![
                    id,
                    breach.tenant.map(|t| t.to_string()),
                    breach.nature,
                    serde_json::to_string(&breach.categories).expect("JSON serialises"),
                    breach.approx_subjects as i64,
                    breach.consequences,
                    breach.measures,
                    breach.detected_ms,
                    recorded_ms,
                    breach.recorded_by.map(|u| u.to_string())
                ],
            )?;
            Ok(())
        })
        .await?;
    get(store, scope, parse_id(&found)?).await
}

pub(super) async fn list(store: &SqliteStore, scope: &Scope) -> Result<Vec<Breach>> {
    let tenant = confined(scope)?;
    let rows = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM breach WHERE ?1 IS NULL OR tenant_id = ?1
                 ORDER BY detected_ms DESC, id"
            ))?;
            let rows = stmt
                .query_map([tenant], read)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    rows.into_iter().map(BreachRow::open).collect()
}

pub(super) async fn get(store: &SqliteStore, scope: &Scope, id: uuid::Uuid) -> Result<Breach> {
    let tenant = confined(scope)?;
    store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM breach WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)"
                ),
                params![id.to_string(), tenant],
                read,
            )
            .optional()?)
        })
        .await?
        .ok_or(StoreError::NotFound("breach"))?
        .open()
}

pub(super) async fn authority_notified(
    store: &SqliteStore,
    scope: &Scope,
    id: uuid::Uuid,
    at_ms: TimestampMs,
    reference: Option<String>,
) -> Result<Breach> {
    let breach = get(store, scope, id).await?;
    if breach.authority_notified_ms.is_some() {
        return Err(StoreError::Conflict(
            "the supervisory authority's notification of this breach is already recorded".into(),
        ));
    }
    store
        .writer
        .write(move |c| {
            c.execute(
                "UPDATE breach SET authority_notified_ms = ?2, authority_reference = ?3
                 WHERE id = ?1 AND authority_notified_ms IS NULL",
                params![id.to_string(), at_ms, reference],
            )?;
            Ok(())
        })
        .await?;
    get(store, scope, id).await
}

/// Records that `users` were told of breach `id` (those told before keep their first time);
/// returns everyone told so far.
pub(super) async fn notify(
    store: &SqliteStore,
    scope: &Scope,
    id: uuid::Uuid,
    users: Vec<UserId>,
    at_ms: TimestampMs,
) -> Result<Vec<BreachNotification>> {
    get(store, scope, id).await?;
    store
        .writer
        .write(move |c| {
            let mut stmt = c.prepare_cached(
                "INSERT INTO breach_notification (breach_id, user_id, notified_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (breach_id, user_id) DO NOTHING",
            )?;
            for user in &users {
                stmt.execute(params![id.to_string(), user.to_string(), at_ms])?;
            }
            Ok(())
        })
        .await?;
    notifications(store, scope, id).await
}

pub(super) async fn notifications(
    store: &SqliteStore,
    scope: &Scope,
    id: uuid::Uuid,
) -> Result<Vec<BreachNotification>> {
    get(store, scope, id).await?;
    let rows: Vec<(String, i64)> = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT user_id, notified_ms FROM breach_notification WHERE breach_id = ?1
                 ORDER BY notified_ms, user_id",
            )?;
            let rows = stmt
                .query_map([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    rows.into_iter()
        .map(|(user, at)| {
            Ok(BreachNotification {
                user_id: parse_id(&user)?,
                notified_ms: at,
            })
        })
        .collect()
}
