//! A tenant's classification of its telemetry keys (table `telemetry_classification`) and
//! the expiry of one classified key's points.

use std::collections::BTreeMap;

use rusqlite::params;
use thingsafe_core::{Owner, TenantId, TimestampMs};

use super::SqliteStore;
use super::aggregates::Fold;
use super::retention::{SealedChunk, trim_chunks};
use super::rows::{aad, open_text, parse_id};
use super::telemetry::telemetry_key_index;
use crate::{Result, Scope, StoreError};

const FIELD: &str = "classification.key";

fn key_index(store: &SqliteStore, tenant: TenantId, key: &str) -> Vec<u8> {
    let mut value = tenant.as_uuid().as_bytes().to_vec();
    value.extend_from_slice(key.as_bytes());
    store.vault.blind_index(FIELD, &value).to_vec()
}

/// The classification of the scope's tenant: key → category.
pub(super) async fn get(store: &SqliteStore, scope: &Scope) -> Result<BTreeMap<String, String>> {
    of_tenant(store, scope.tenant()?).await
}

async fn of_tenant(store: &SqliteStore, tenant: TenantId) -> Result<BTreeMap<String, String>> {
    let rows: Vec<(Vec<u8>, Vec<u8>, String)> = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT key_index, key, category FROM telemetry_classification WHERE tenant_id = ?1",
            )?;
            let rows = stmt
                .query_map([tenant.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    let mut map = BTreeMap::new();
    for (index, sealed, category) in rows {
        let row = hex(&index);
        let key = open_text(&store.vault, Owner::Tenant(tenant), FIELD, &row, &sealed)?;
        map.insert(key, category);
    }
    Ok(map)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces the tenant's classification with `map` (a tenant administrator only).
pub(super) async fn set(
    store: &SqliteStore,
    scope: &Scope,
    map: BTreeMap<String, String>,
) -> Result<()> {
    let Scope::Tenant(tenant) = *scope else {
        return Err(StoreError::Forbidden(
            "only a tenant administrator classifies the tenant's telemetry keys".into(),
        ));
    };
    let mut rows = Vec::with_capacity(map.len());
    for (key, category) in map {
        let index = key_index(store, tenant, &key);
        let sealed = store.vault.seal(
            Owner::Tenant(tenant),
            aad(FIELD, &hex(&index)).as_bytes(),
            key.as_bytes(),
        )?;
        rows.push((index, sealed, category));
    }
    store
        .writer
        .write(move |c| {
            c.execute(
                "DELETE FROM telemetry_classification WHERE tenant_id = ?1",
                [tenant.to_string()],
            )?;
            let mut stmt = c.prepare_cached(
                "INSERT INTO telemetry_classification (tenant_id, key_index, key, category)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (index, sealed, category) in &rows {
                stmt.execute(params![tenant.to_string(), index, sealed, category])?;
            }
            Ok(())
        })
        .await
}

/// Every tenant's classification, for the retention sweeper (erased tenants left out).
pub(super) async fn all(store: &SqliteStore) -> Result<Vec<(TenantId, BTreeMap<String, String>)>> {
    let tenants: Vec<String> = store
        .readers
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT DISTINCT tenant_id FROM telemetry_classification
                 WHERE tenant_id NOT IN (SELECT tenant_id FROM erasure WHERE tenant_id IS NOT NULL)",
            )?;
            let rows = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    let mut out = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        let tenant: TenantId = parse_id(&tenant)?;
        out.push((tenant, of_tenant(store, tenant).await?));
    }
    Ok(out)
}

/// Deletes the points of `key` older than `before` from the tenant's devices; returns how
/// many. Chunks hold every key of a message, so those holding older points are opened,
/// trimmed and re-sealed (or deleted when nothing is left); the key's latest value goes
/// when it is older too.
pub(super) async fn expire_key(
    store: &SqliteStore,
    tenant: TenantId,
    key: String,
    before: TimestampMs,
    aggregate: bool,
) -> Result<u64> {
    store.flusher.flush_all().await?;
    let vault = store.vault.clone();
    store
        .writer
        .write(move |c| {
            let chunks: Vec<SealedChunk> = c
                .prepare(
                    "SELECT id, device_id, owner, points FROM telemetry
                     WHERE device_id IN (SELECT id FROM device WHERE tenant_id = ?1) AND ts_min < ?2",
                )?
                .query_map(params![tenant.to_string(), before], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut fold = aggregate.then(Fold::default);
            let (deleted, devices) = trim_chunks(
                c,
                &vault,
                chunks,
                |p| p.key != key || p.ts >= before,
                fold.as_mut(),
            )?;
            if let Some(fold) = fold {
                fold.write(c)?;
            }
            for device in devices {
                let device_id: thingsafe_core::DeviceId = parse_id(&device)?;
                c.execute(
                    "DELETE FROM telemetry_latest WHERE device_id = ?1 AND key_index = ?2 AND ts < ?3",
                    params![device, telemetry_key_index(&vault, device_id, &key), before],
                )?;
            }
            Ok(deleted)
        })
        .await
}
