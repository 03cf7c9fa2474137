//! Suspensions of devices, device types and tenants (table `suspension`), mirrored in
//! memory: every device connection and device API call asks, so the answer must not cost
//! a query. Each change bumps a counter that connected sessions watch.

use std::collections::HashMap;
use std::sync::RwLock;

use rusqlite::{Connection, OptionalExtension, params};
use thingsafe_core::{Device, DeviceId, TenantId, now_ms};
use tokio::sync::watch;

use super::SqliteStore;
use super::rows::parse_id;
use crate::{Result, Scope, StoreError, Suspension, SuspensionTarget};

type Key = (&'static str, TenantId, String);

pub(super) struct Suspensions {
    active: RwLock<HashMap<Key, Suspension>>,
    generation: watch::Sender<u64>,
}

fn key(target: &SuspensionTarget, tenant: TenantId) -> Key {
    match target {
        SuspensionTarget::Device(id) => ("device", tenant, id.to_string()),
        SuspensionTarget::DeviceType(t) => ("type", tenant, t.clone()),
        SuspensionTarget::Tenant(t) => ("tenant", *t, t.to_string()),
    }
}

impl Suspensions {
    pub(super) fn load(conn: &Connection) -> Result<Suspensions> {
        let mut stmt =
            conn.prepare("SELECT kind, tenant_id, target, reason, since_ms FROM suspension")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut active = HashMap::new();
        for (kind, tenant, target, reason, since_ms) in rows {
            let tenant: TenantId = parse_id(&tenant)?;
            let target = match kind.as_str() {
                "device" => SuspensionTarget::Device(parse_id(&target)?),
                "type" => SuspensionTarget::DeviceType(target),
                _ => SuspensionTarget::Tenant(tenant),
            };
            active.insert(
                key(&target, tenant),
                Suspension {
                    target,
                    tenant,
                    reason,
                    since_ms,
                },
            );
        }
        Ok(Suspensions {
            active: RwLock::new(active),
            generation: watch::channel(0).0,
        })
    }

    /// The suspension that stops `device`: its own, its type's or its tenant's.
    pub(super) fn of(&self, device: &Device) -> Option<Suspension> {
        let active = self.active.read().expect("suspensions lock");
        [
            key(&SuspensionTarget::Device(device.id), device.tenant_id),
            key(
                &SuspensionTarget::DeviceType(device.device_type.clone()),
                device.tenant_id,
            ),
            key(
                &SuspensionTarget::Tenant(device.tenant_id),
                device.tenant_id,
            ),
        ]
        .iter()
        .find_map(|k| active.get(k).cloned())
    }

    pub(super) fn watch(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn changed(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

/// The tenant a suspension of `target` belongs to, as `scope` may touch it: a tenant
/// administrator their own tenant's devices and types; the system administrator any
/// device, any tenant's types (`tenant` given) and tenants.
async fn tenant_of(
    store: &SqliteStore,
    scope: &Scope,
    target: &SuspensionTarget,
    tenant: Option<TenantId>,
) -> Result<TenantId> {
    match (scope, target) {
        (Scope::Customer { .. }, _) => Err(StoreError::Forbidden(
            "customer users cannot suspend devices".into(),
        )),
        (Scope::Tenant(_), SuspensionTarget::Tenant(_)) => Err(StoreError::Forbidden(
            "only a system administrator suspends a tenant".into(),
        )),
        (Scope::Tenant(t), SuspensionTarget::DeviceType(_)) => Ok(*t),
        (Scope::System, SuspensionTarget::DeviceType(_)) => tenant
            .ok_or_else(|| StoreError::Invalid("say which tenant's device type: tenantId".into())),
        (_, SuspensionTarget::Tenant(t)) => {
            let t = *t;
            let exists = store
                .readers
                .read(move |c| {
                    Ok(c.query_row(
                        "SELECT 1 FROM tenant WHERE id = ?1",
                        [t.to_string()],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some())
                })
                .await?;
            exists.then_some(t).ok_or(StoreError::NotFound("tenant"))
        }
        (_, SuspensionTarget::Device(id)) => {
            let (id, only) = (
                *id,
                match scope {
                    Scope::Tenant(t) => Some(t.to_string()),
                    _ => None,
                },
            );
            let tenant: Option<String> = store
                .readers
                .read(move |c| {
                    Ok(c.query_row(
                        "SELECT tenant_id FROM device WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)",
                        params![id.to_string(), only],
                        |r| r.get(0),
                    )
                    .optional()?)
                })
                .await?;
            parse_id(&tenant.ok_or(StoreError::NotFound("device"))?)
        }
    }
}

pub(super) async fn suspend(
    store: &SqliteStore,
    scope: &Scope,
    target: SuspensionTarget,
    tenant: Option<TenantId>,
    reason: String,
) -> Result<Suspension> {
    let tenant = tenant_of(store, scope, &target, tenant).await?;
    let suspension = Suspension {
        target,
        tenant,
        reason,
        since_ms: now_ms(),
    };
    let (kind, _, target) = key(&suspension.target, tenant);
    let row = suspension.clone();
    store
        .writer
        .write(move |c| {
            c.execute(
                "INSERT INTO suspension (kind, tenant_id, target, reason, since_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, tenant_id, target) DO UPDATE SET reason = ?4",
                params![
                    kind,
                    row.tenant.to_string(),
                    target,
                    row.reason,
                    row.since_ms
                ],
            )?;
            Ok(())
        })
        .await?;
    let mut active = store.suspensions.active.write().expect("suspensions lock");
    let k = key(&suspension.target, tenant);
    let kept = active
        .entry(k)
        .and_modify(|s| s.reason = suspension.reason.clone())
        .or_insert(suspension)
        .clone();
    drop(active);
    store.suspensions.changed();
    Ok(kept)
}

pub(super) async fn lift(
    store: &SqliteStore,
    scope: &Scope,
    target: SuspensionTarget,
    tenant: Option<TenantId>,
) -> Result<()> {
    let tenant = tenant_of(store, scope, &target, tenant).await?;
    let (kind, _, name) = key(&target, tenant);
    let removed = store
        .writer
        .write(move |c| {
            Ok(c.execute(
                "DELETE FROM suspension WHERE kind = ?1 AND tenant_id = ?2 AND target = ?3",
                params![kind, tenant.to_string(), name],
            )?)
        })
        .await?;
    if removed == 0 {
        return Err(StoreError::NotFound("suspension"));
    }
    store
        .suspensions
        .active
        .write()
        .expect("suspensions lock")
        .remove(&key(&target, tenant));
    store.suspensions.changed();
    Ok(())
}

/// The suspensions `scope` may see, oldest first.
pub(super) fn list(store: &SqliteStore, scope: &Scope) -> Result<Vec<Suspension>> {
    let only = match scope {
        Scope::System => None,
        Scope::Tenant(t) => Some(*t),
        Scope::Customer { .. } => {
            return Err(StoreError::Forbidden(
                "customer users cannot see suspensions".into(),
            ));
        }
    };
    let active = store.suspensions.active.read().expect("suspensions lock");
    let mut all: Vec<Suspension> = active
        .values()
        .filter(|s| only.is_none_or(|t| s.tenant == t))
        .cloned()
        .collect();
    all.sort_by_key(|s| s.since_ms);
    Ok(all)
}

/// Forgets the suspensions of a deleted device (its row is gone).
pub(super) fn forget_device(store: &SqliteStore, device: DeviceId) {
    store
        .suspensions
        .active
        .write()
        .expect("suspensions lock")
        .retain(|_, s| s.target != SuspensionTarget::Device(device));
}
