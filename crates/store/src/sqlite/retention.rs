//! Retention: telemetry older than its retention is deleted. Whole chunks older than the
//! cut go by SQL alone; the few chunks that straddle it are opened, trimmed and re-sealed.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, params};
use thingsafe_core::payload::Point;
use thingsafe_core::{Owner, TenantId, TimestampMs};
use thingsafe_vault::Vault;

use super::SqliteStore;
use super::aggregates::Fold;
use super::rows::{aad, parse_id};
use crate::codec::{decode_points, encode_points};
use crate::{Result, Scope, StoreError, Sweep};

pub(super) async fn expire_telemetry(
    store: &SqliteStore,
    tenant: TenantId,
    before: TimestampMs,
    aggregate: bool,
) -> Result<u64> {
    // Points still in the log are moved into chunks first, so one rule covers all.
    store.flusher.flush_all().await?;
    let vault = store.vault.clone();
    let tenant = tenant.to_string();
    store
        .writer
        .write(move |c| {
            let devices = "SELECT id FROM device WHERE tenant_id = ?1";
            let straddling: Vec<SealedChunk> = c
                .prepare(&format!(
                    "SELECT id, device_id, owner, points FROM telemetry
                     WHERE device_id IN ({devices}) AND ts_min < ?2 AND ts_max >= ?2"
                ))?
                .query_map(params![tenant, before], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut fold = aggregate.then(Fold::default);
            let (mut deleted, _) =
                trim_chunks(c, &vault, straddling, |p| p.ts >= before, fold.as_mut())?;
            // Whole chunks go by SQL; they are opened only to count their points for the
            // sweep's record (and to fold them into aggregates).
            let old_chunks: Vec<(String, String, Vec<u8>)> = c
                .prepare(&format!(
                    "SELECT device_id, owner, points FROM telemetry
                     WHERE device_id IN ({devices}) AND ts_max < ?2"
                ))?
                .query_map(params![tenant, before], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            for (device, owner, sealed) in &old_chunks {
                let owner: Owner = owner.parse().map_err(StoreError::Backend)?;
                if let Ok(bytes) = vault.unseal(owner, aad("telemetry", device).as_bytes(), sealed)
                {
                    let points = decode_points(&bytes)?;
                    deleted += points.len() as u64;
                    if let Some(fold) = fold.as_mut() {
                        points.iter().for_each(|p| fold.add(p));
                    }
                }
            }
            if let Some(fold) = fold {
                fold.write(c)?;
            }
            c.execute(
                &format!("DELETE FROM telemetry WHERE device_id IN ({devices}) AND ts_max < ?2"),
                params![tenant, before],
            )?;
            // A latest value older than the cut is one of the points counted above.
            c.execute(
                &format!("DELETE FROM telemetry_latest WHERE device_id IN ({devices}) AND ts < ?2"),
                params![tenant, before],
            )?;
            Ok(deleted)
        })
        .await
}

/// A telemetry chunk as stored: id, device, owner, sealed points.
pub(super) type SealedChunk = (i64, String, String, Vec<u8>);

/// Opens each chunk, keeps the points `keep` accepts and re-seals the rest (a chunk left
/// empty is deleted), folding the others into `fold` if given; chunks of an erased owner
/// are passed over. Returns how many points went and the devices whose chunks changed.
pub(super) fn trim_chunks(
    c: &Connection,
    vault: &Vault,
    chunks: Vec<SealedChunk>,
    keep: impl Fn(&Point) -> bool,
    mut fold: Option<&mut Fold>,
) -> Result<(u64, BTreeSet<String>)> {
    let mut deleted = 0u64;
    let mut devices = BTreeSet::new();
    for (id, device, owner, sealed) in chunks {
        let owner: Owner = owner.parse().map_err(StoreError::Backend)?;
        let field = aad("telemetry", &device);
        let bytes = match vault.unseal(owner, field.as_bytes(), &sealed) {
            Ok(bytes) => bytes,
            Err(thingsafe_vault::VaultError::KeyDestroyed(..)) => continue,
            Err(e) => return Err(e.into()),
        };
        let points = decode_points(&bytes)?;
        let total = points.len();
        let (kept, gone): (Vec<Point>, Vec<Point>) = points.into_iter().partition(|p| keep(p));
        if kept.len() == total {
            continue;
        }
        if let Some(fold) = fold.as_deref_mut() {
            gone.iter().for_each(|p| fold.add(p));
        }
        deleted += (total - kept.len()) as u64;
        match (
            kept.iter().map(|p| p.ts).min(),
            kept.iter().map(|p| p.ts).max(),
        ) {
            (Some(ts_min), Some(ts_max)) => {
                let resealed = vault.seal(owner, field.as_bytes(), &encode_points(&kept))?;
                c.execute(
                    "UPDATE telemetry SET points = ?2, ts_min = ?3, ts_max = ?4 WHERE id = ?1",
                    params![id, resealed, ts_min, ts_max],
                )?;
            }
            _ => {
                c.execute("DELETE FROM telemetry WHERE id = ?1", [id])?;
            }
        }
        devices.insert(device);
    }
    Ok((deleted, devices))
}

pub(super) async fn tenant_retention(store: &SqliteStore, scope: &Scope) -> Result<Option<u32>> {
    let tenant = scope.tenant()?.to_string();
    store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                "SELECT telemetry_days FROM tenant_retention WHERE tenant_id = ?1",
                [tenant],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
}

pub(super) async fn set_tenant_retention(
    store: &SqliteStore,
    scope: &Scope,
    days: Option<u32>,
) -> Result<()> {
    let Scope::Tenant(tenant) = scope else {
        return Err(StoreError::Forbidden(
            "only a tenant administrator sets the tenant's retention".into(),
        ));
    };
    let tenant = tenant.to_string();
    store
        .writer
        .write(move |c| {
            match days {
                Some(days) => c.execute(
                    "INSERT INTO tenant_retention (tenant_id, telemetry_days) VALUES (?1, ?2)
                     ON CONFLICT (tenant_id) DO UPDATE SET telemetry_days = excluded.telemetry_days",
                    params![tenant, days],
                )?,
                None => c.execute(
                    "DELETE FROM tenant_retention WHERE tenant_id = ?1",
                    [tenant],
                )?,
            };
            Ok(())
        })
        .await
}

pub(super) async fn settings(store: &SqliteStore) -> Result<Vec<(TenantId, Option<u32>)>> {
    let rows: Vec<(String, Option<u32>)> = store
        .readers
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT t.id, r.telemetry_days FROM tenant t
                 LEFT JOIN tenant_retention r ON r.tenant_id = t.id
                 WHERE t.id NOT IN (SELECT tenant_id FROM erasure WHERE tenant_id IS NOT NULL)",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    rows.into_iter()
        .map(|(t, d)| Ok((parse_id(&t)?, d)))
        .collect()
}

pub(super) async fn record(store: &SqliteStore, sweep: &Sweep) -> Result<()> {
    let sweep = sweep.clone();
    store
        .writer
        .write(move |c| {
            c.execute(
                "INSERT INTO retention_sweep
                     (started_ms, finished_ms, tenant_id, telemetry_points, records, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    sweep.started_ms,
                    sweep.finished_ms,
                    sweep.tenant.map(|t| t.to_string()),
                    sweep.telemetry_points as i64,
                    serde_json::to_string(&sweep.records).expect("counts serialise"),
                    sweep.error
                ],
            )?;
            Ok(())
        })
        .await
}

/// started, finished, tenant, points, records (JSON), error
type SweepRow = (i64, i64, Option<String>, i64, String, Option<String>);

pub(super) async fn sweeps(
    store: &SqliteStore,
    tenant: Option<TenantId>,
    limit: usize,
) -> Result<Vec<Sweep>> {
    let tenant = tenant.map(|t| t.to_string());
    let rows: Vec<SweepRow> = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT started_ms, finished_ms, tenant_id, telemetry_points, records, error
                 FROM retention_sweep WHERE ?1 IS NULL OR tenant_id = ?1
                 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![tenant, limit as i64], |r| {
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
        .map(
            |(started_ms, finished_ms, tenant, points, records, error)| {
                Ok(Sweep {
                    started_ms,
                    finished_ms,
                    tenant: tenant.as_deref().map(parse_id).transpose()?,
                    telemetry_points: points as u64,
                    records: serde_json::from_str(&records).map_err(|e| {
                        StoreError::Backend(format!("a sweep's record counts do not parse: {e}"))
                    })?,
                    error,
                })
            },
        )
        .collect()
}
