//! The disclosure log (table `disclosure`, append-only while the person has an account).

use rusqlite::params;

use super::SqliteStore;
use super::rows::parse_id;
use crate::records::{Disclosure, DisclosureFilter};
use crate::{Result, Scope, StoreError};

pub(super) async fn record(store: &SqliteStore, disclosure: Disclosure) -> Result<()> {
    store
        .writer
        .write(move |c| {
            c.execute(
                "INSERT INTO disclosure (at_ms, tenant_id, subject_id, recipient, purpose, categories)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    disclosure.at_ms,
                    disclosure.tenant_id.map(|t| t.to_string()),
                    disclosure.subject.to_string(),
                    disclosure.recipient,
                    disclosure.purpose,
                    serde_json::to_string(&disclosure.categories).expect("JSON serialises")
                ],
            )?;
            Ok(())
        })
        .await
}

/// subject, tenant, at, recipient, purpose, categories
type Row = (String, Option<String>, i64, String, String, String);

/// Disclosures matching `filter` within the scope (a tenant's own, or all for the system;
/// a customer user only of one person), oldest first.
pub(super) async fn list(
    store: &SqliteStore,
    scope: &Scope,
    filter: DisclosureFilter,
) -> Result<Vec<Disclosure>> {
    let tenant = match (scope, filter) {
        (Scope::System, _) => None,
        (Scope::Tenant(t), _)
        | (Scope::Customer { tenant: t, .. }, DisclosureFilter::Subject(_)) => Some(t.to_string()),
        (Scope::Customer { .. }, DisclosureFilter::Between { .. }) => {
            return Err(StoreError::Forbidden(
                "the disclosure log is for administrators; people read their own".into(),
            ));
        }
    };
    let (subject, from, to) = match filter {
        DisclosureFilter::Subject(user) => (Some(user.to_string()), None, None),
        DisclosureFilter::Between { from_ms, to_ms } => (None, Some(from_ms), Some(to_ms)),
    };
    let rows: Vec<Row> = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT subject_id, tenant_id, at_ms, recipient, purpose, categories FROM disclosure
                 WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR subject_id = ?2)
                   AND (?3 IS NULL OR at_ms >= ?3) AND (?4 IS NULL OR at_ms < ?4)
                 ORDER BY at_ms, id",
            )?;
            let rows = stmt
                .query_map(params![tenant, subject, from, to], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    rows.into_iter()
        .map(|(subject, tenant, at_ms, recipient, purpose, categories)| {
            Ok(Disclosure {
                subject: parse_id(&subject)?,
                tenant_id: tenant.as_deref().map(parse_id).transpose()?,
                categories: serde_json::from_str(&categories).map_err(|e| {
                    StoreError::Backend(format!("a disclosure's categories do not parse: {e}"))
                })?,
                recipient,
                purpose,
                at_ms,
            })
        })
        .collect()
}
