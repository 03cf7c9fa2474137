//! Tenant-level scheduled exports: the opt-in schedule per tenant and the record of runs
//! (tables `tenant_export_schedule`, `tenant_export`). The files are the binary's business.

use rusqlite::{OptionalExtension, params};
use thingsafe_core::{TenantId, now_ms};

use super::rows::parse_id;
use super::{SqliteStore, whole_tenant};
use crate::{ExportSchedule, Result, Scope, TenantExport, TenantExportSchedule};

pub(super) async fn schedule(
    store: &SqliteStore,
    scope: &Scope,
) -> Result<Option<TenantExportSchedule>> {
    let tenant = whole_tenant(scope)?.to_string();
    store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                "SELECT schedule, keep FROM tenant_export_schedule WHERE tenant_id = ?1",
                [tenant],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)),
            )
            .optional()?
            .map(|(schedule, keep)| TenantExportSchedule {
                schedule: ExportSchedule::parse(&schedule).unwrap_or(ExportSchedule::Weekly),
                keep,
            }))
        })
        .await
}

pub(super) async fn set_schedule(
    store: &SqliteStore,
    scope: &Scope,
    schedule: Option<TenantExportSchedule>,
) -> Result<()> {
    let tenant = whole_tenant(scope)?.to_string();
    store
        .writer
        .write(move |c| {
            match schedule {
                Some(s) => c.execute(
                    "INSERT INTO tenant_export_schedule (tenant_id, schedule, keep, updated_ms)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant_id) DO UPDATE SET schedule = ?2, keep = ?3, updated_ms = ?4",
                    params![tenant, s.schedule.as_str(), s.keep, now_ms()],
                )?,
                None => c.execute(
                    "DELETE FROM tenant_export_schedule WHERE tenant_id = ?1",
                    [tenant],
                )?,
            };
            Ok(())
        })
        .await
}

/// Tenants whose schedule wants an export at `now`: none made yet, or the last good or
/// running one started a period (the schedule's, or `every_ms`) ago or more.
pub(super) async fn due(
    store: &SqliteStore,
    now: i64,
    every_ms: Option<i64>,
) -> Result<Vec<(TenantId, TenantExportSchedule)>> {
    store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT s.tenant_id, s.schedule, s.keep,
                        (SELECT MAX(started_ms) FROM tenant_export e
                          WHERE e.tenant_id = s.tenant_id AND e.status IN ('ok', 'running'))
                 FROM tenant_export_schedule s",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut due = Vec::new();
            for (tenant, schedule, keep, last) in rows {
                let schedule = ExportSchedule::parse(&schedule).unwrap_or(ExportSchedule::Weekly);
                let period = every_ms.unwrap_or(schedule.period_ms());
                if last.is_none_or(|last| now - last >= period) {
                    due.push((parse_id(&tenant)?, TenantExportSchedule { schedule, keep }));
                }
            }
            Ok(due)
        })
        .await
}

pub(super) async fn start(store: &SqliteStore, tenant: TenantId, id: &str) -> Result<()> {
    let id = id.to_string();
    store
        .writer
        .write(move |c| {
            c.execute(
                "INSERT INTO tenant_export (id, tenant_id, started_ms, status) VALUES (?1, ?2, ?3, 'running')",
                params![id, tenant.to_string(), now_ms()],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn finish(
    store: &SqliteStore,
    id: &str,
    outcome: std::result::Result<u64, String>,
) -> Result<()> {
    let id = id.to_string();
    store
        .writer
        .write(move |c| {
            let (status, bytes, error) = match outcome {
                Ok(bytes) => ("ok", Some(bytes as i64), None),
                Err(e) => ("failed", None, Some(e)),
            };
            c.execute(
                "UPDATE tenant_export SET finished_ms = ?2, status = ?3, bytes = ?4, error = ?5 WHERE id = ?1",
                params![id, now_ms(), status, bytes, error],
            )?;
            Ok(())
        })
        .await
}

/// Marks runs left `running` by a stop as interrupted; returns how many.
pub(super) async fn interrupt(store: &SqliteStore) -> Result<u64> {
    store
        .writer
        .write(|c| {
            Ok(c.execute(
                "UPDATE tenant_export SET status = 'interrupted',
                        error = 'the server stopped during this export'
                 WHERE status = 'running'",
                [],
            )? as u64)
        })
        .await
}

/// The scope's tenant's exports (`None`: every tenant's), newest first.
pub(super) async fn list(
    store: &SqliteStore,
    tenant: Option<TenantId>,
) -> Result<Vec<TenantExport>> {
    store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, tenant_id, started_ms, finished_ms, status, bytes, error FROM tenant_export
                 WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY started_ms DESC, id",
            )?;
            let rows = stmt
                .query_map([tenant.map(|t| t.to_string())], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get(6)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(id, tenant, started_ms, finished_ms, status, bytes, error)| {
                    Ok(TenantExport {
                        id,
                        tenant: parse_id(&tenant)?,
                        started_ms,
                        finished_ms,
                        status,
                        bytes: bytes.map(|b| b as u64),
                        error,
                    })
                })
                .collect()
        })
        .await
}

pub(super) async fn delete(store: &SqliteStore, id: &str) -> Result<()> {
    let id = id.to_string();
    store
        .writer
        .write(move |c| {
            c.execute("DELETE FROM tenant_export WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
}
