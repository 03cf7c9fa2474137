//! ThingsBoard's persistent RPC in SQLite (`rpc`, migration 0017): the command (method,
//! params, additionalInfo) and the device's answer are sealed with the tenant's key. While
//! a command is pending it is also in the device's mailbox (crate::rpc): restored from
//! here at start, its status changes stored here in order by one task, which also sweeps
//! expired and unacknowledged commands. Readers see their tenant's (and customer's)
//! commands only, filtered in SQL.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value as Json, json};
use thingsafe_core::{
    Device, DeviceId, Owner, Page, PageRequest, RpcId, TenantId, TimestampMs, now_ms,
};
use thingsafe_vault::Vault;
use tokio::sync::mpsc;

use super::SqliteStore;
use super::pool::Writer;
use super::rows::{self, id_text, parse_id};
use crate::feed::ChangeFeed;
use crate::rpc::{Mailboxes, Tracked, Update};
use crate::{
    Change, NewPersistentRpc, PersistentRpc, Result, RpcRequest, RpcSort, RpcStatus, Scope,
    StoreError,
};

/// How long a command given to a connection may wait for its acknowledgement before it
/// is sent again (ThingsBoard's MQTT transport timeout, 10 s).
pub(crate) const ACK_TIMEOUT_MS: i64 = 10_000;
/// How often pending commands are checked for expiry and acknowledgement.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

const REQUEST: &str = "rpc.request";
const RESPONSE: &str = "rpc.response";

/// The sealed part of a command.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sealed {
    method: String,
    params: Json,
    #[serde(rename = "additionalInfo", default)]
    additional_info: Option<Json>,
}

fn seal_json(
    vault: &Vault,
    tenant: TenantId,
    field: &str,
    row: &str,
    value: &Json,
) -> Result<Vec<u8>> {
    let text = value.to_string();
    Ok(vault.seal(
        Owner::Tenant(tenant),
        rows::aad(field, row).as_bytes(),
        text.as_bytes(),
    )?)
}

fn open_json(
    vault: &Vault,
    tenant: TenantId,
    field: &str,
    row: &str,
    sealed: &[u8],
) -> Result<Json> {
    let text = rows::open_text(vault, Owner::Tenant(tenant), field, row, sealed)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Backend(format!("{field} of {row} is not JSON: {e}")))
}

/// Puts the pending commands back in their mailboxes, in the order they were sent; a
/// command whose tenant's key is gone (erased) stays behind, unreadable, for the purge.
pub(super) fn restore(conn: &Connection, vault: &Vault, mailboxes: &Mailboxes) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT id, tenant_id, device_id, expires_ms, oneway, retries, attempts, request_id,
                status, request
         FROM rpc WHERE finished_ms IS NULL ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, bool>(4)?,
                r.get::<_, u32>(5)?,
                r.get::<_, u32>(6)?,
                r.get::<_, u32>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, Vec<u8>>(9)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut last = 0u32;
    for (id, tenant, device, expires_ms, oneway, retries, attempts, request_id, status, sealed) in
        rows
    {
        let tenant: TenantId = parse_id(&tenant)?;
        let device: DeviceId = parse_id(&device)?;
        let Ok(body) = open_json(vault, tenant, REQUEST, &id, &sealed) else {
            tracing::warn!(rpc = %id, "a pending persistent RPC cannot be opened (its tenant's key is gone); left for the purge");
            continue;
        };
        let Ok(body) = serde_json::from_value::<Sealed>(body) else {
            continue;
        };
        let status = RpcStatus::parse(&status).unwrap_or(RpcStatus::Queued);
        last = last.max(request_id);
        mailboxes.enqueue(
            device,
            Tracked {
                rpc: parse_id(&id)?,
                tenant,
                // A command sent before the restart and not acknowledged is swept at once:
                // sent again, or failed when its retries are spent.
                status,
                retries,
                attempts,
                sent_ms: 0,
                request: RpcRequest {
                    id: request_id,
                    method: body.method,
                    params: body.params,
                    oneway,
                    expires_ms,
                },
            },
        );
    }
    mailboxes.ids_after(last);
    Ok(())
}

/// The task that stores status changes in the order they happen and sweeps pending
/// commands; ends when the store is dropped (its sender with it).
pub(super) fn start(
    writer: Writer,
    vault: Arc<Vault>,
    mailboxes: Arc<Mailboxes>,
    changes: Arc<ChangeFeed>,
) -> (
    mpsc::UnboundedSender<Vec<Update>>,
    Option<tokio::task::JoinHandle<()>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Update>>();
    let task = tokio::runtime::Handle::try_current().ok().map(|runtime| {
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let mut updates = tokio::select! {
                    got = rx.recv() => match got {
                        Some(updates) => updates,
                        None => return,
                    },
                    _ = tick.tick() => {
                        let (updates, waiting) = mailboxes.sweep(now_ms(), ACK_TIMEOUT_MS);
                        for device in waiting {
                            changes.send(Change::RpcWaiting { device });
                        }
                        updates
                    }
                };
                while let Ok(more) = rx.try_recv() {
                    updates.extend(more);
                }
                if updates.is_empty() {
                    continue;
                }
                if let Err(e) = store_updates(&writer, &vault, updates).await {
                    tracing::error!(error = %e, "persistent RPC statuses could not be stored");
                }
            }
        })
    });
    (tx, task)
}

async fn store_updates(writer: &Writer, vault: &Vault, updates: Vec<Update>) -> Result<()> {
    let mut sealed = Vec::with_capacity(updates.len());
    for u in updates {
        let id = u.rpc.to_string();
        let response = match &u.response {
            Some(response) => Some(seal_json(vault, u.tenant, RESPONSE, &id, response)?),
            None => None,
        };
        sealed.push((id, u.status, u.attempts, response));
    }
    writer
        .write(move |c| {
            let now = now_ms();
            let mut update = c.prepare_cached(
                "UPDATE rpc SET status = ?2, attempts = ?3, response = COALESCE(?4, response),
                        finished_ms = ?5
                 WHERE id = ?1 AND finished_ms IS NULL",
            )?;
            for (id, status, attempts, response) in sealed {
                let finished = status.is_final().then_some(now);
                update.execute(params![id, status.as_str(), attempts, response, finished])?;
            }
            Ok(())
        })
        .await
}

impl SqliteStore {
    /// Hands status changes to the task that stores them, in order.
    pub(super) fn store_rpc_updates(&self, updates: Vec<Update>) {
        if !updates.is_empty() {
            let _ = self.rpc_updates.send(updates);
        }
    }
}

const COLUMNS: &str = "r.id, r.tenant_id, r.device_id, r.created_ms, r.expires_ms, r.oneway, \
                       r.retries, r.status, r.request, r.response, r.seq";

/// A row as stored: sealed, its status as written.
struct RpcRow {
    id: String,
    tenant: String,
    device: String,
    created_ms: TimestampMs,
    expires_ms: TimestampMs,
    oneway: bool,
    retries: u32,
    status: String,
    request: Vec<u8>,
    response: Option<Vec<u8>>,
    seq: i64,
}

impl RpcRow {
    fn read(r: &rusqlite::Row) -> rusqlite::Result<RpcRow> {
        Ok(RpcRow {
            id: r.get(0)?,
            tenant: r.get(1)?,
            device: r.get(2)?,
            created_ms: r.get(3)?,
            expires_ms: r.get(4)?,
            oneway: r.get(5)?,
            retries: r.get(6)?,
            status: r.get(7)?,
            request: r.get(8)?,
            response: r.get(9)?,
            seq: r.get(10)?,
        })
    }

    /// The status as of `now`: a pending command past its expiration time is expired
    /// (the sweep records it within a second).
    fn status(&self, now: TimestampMs) -> RpcStatus {
        let stored = RpcStatus::parse(&self.status).unwrap_or(RpcStatus::Failed);
        if !stored.is_final() && self.expires_ms <= now {
            stored.expired()
        } else {
            stored
        }
    }

    fn open(self, vault: &Vault, now: TimestampMs) -> Result<PersistentRpc> {
        let status = self.status(now);
        let tenant: TenantId = parse_id(&self.tenant)?;
        let body: Sealed =
            serde_json::from_value(open_json(vault, tenant, REQUEST, &self.id, &self.request)?)
                .map_err(|e| StoreError::Backend(format!("rpc.request of {}: {e}", self.id)))?;
        let response = self
            .response
            .as_deref()
            .map(|sealed| open_json(vault, tenant, RESPONSE, &self.id, sealed))
            .transpose()?;
        Ok(PersistentRpc {
            id: parse_id(&self.id)?,
            tenant_id: tenant,
            device_id: parse_id(&self.device)?,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            method: body.method,
            params: body.params,
            oneway: self.oneway,
            retries: self.retries,
            additional_info: body.additional_info,
            response,
            status,
        })
    }
}

/// Pending persistent commands per device at most: they are kept in memory until they
/// finish, so a tenant cannot pile up commands without bound (ThingsBoard bounds them in
/// its tenant profiles).
pub(crate) const MAX_PENDING_PER_DEVICE: usize = 1_000;

pub(super) async fn persist(
    store: &SqliteStore,
    device: &Device,
    new: NewPersistentRpc,
) -> Result<PersistentRpc> {
    let pending = store.rpc.pending(device.id);
    if pending >= MAX_PENDING_PER_DEVICE {
        return Err(StoreError::Invalid(format!(
            "the device has {pending} persistent commands waiting, the most allowed: wait until they are delivered or expire, or delete some"
        )));
    }
    let id = RpcId::random();
    let id_text = id.to_string();
    let tenant = device.tenant_id;
    let now = now_ms();
    // Already expired (an expirationTime in the past): stored as such, never delivered.
    let status = if new.expires_ms <= now {
        RpcStatus::Expired
    } else {
        RpcStatus::Queued
    };
    let body = json!({
        "method": new.method,
        "params": new.params,
        "additionalInfo": new.additional_info,
    });
    let sealed = seal_json(&store.vault, tenant, REQUEST, &id_text, &body)?;
    let request_id = store.rpc.next_id();
    let (row, dev) = (id_text.clone(), device.id.to_string());
    let (oneway, retries, expires_ms) = (new.oneway, new.retries, new.expires_ms);
    store
        .writer
        .write(move |c| {
            c.execute(
                "INSERT INTO rpc (id, seq, tenant_id, device_id, created_ms, expires_ms, oneway,
                                  retries, request_id, status, request, finished_ms)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM rpc), ?2, ?3, ?4, ?5, ?6,
                         ?7, ?8, ?9, ?10, ?11)",
                params![
                    row,
                    tenant.to_string(),
                    dev,
                    now,
                    expires_ms,
                    oneway,
                    retries,
                    request_id,
                    status.as_str(),
                    sealed,
                    status.is_final().then_some(now),
                ],
            )?;
            Ok(())
        })
        .await?;
    if status == RpcStatus::Queued {
        store.rpc.enqueue(
            device.id,
            Tracked {
                rpc: id,
                tenant,
                status,
                retries,
                attempts: 0,
                sent_ms: 0,
                request: RpcRequest {
                    id: request_id,
                    method: new.method.clone(),
                    params: new.params.clone(),
                    oneway,
                    expires_ms,
                },
            },
        );
        store.changes.send(Change::RpcWaiting { device: device.id });
    }
    Ok(PersistentRpc {
        id,
        tenant_id: tenant,
        device_id: device.id,
        created_ms: now,
        expires_ms,
        method: new.method,
        params: new.params,
        oneway,
        retries,
        additional_info: new.additional_info,
        response: None,
        status,
    })
}

/// `WHERE` for a command in `scope`: its tenant's, and its customer's device's.
const IN_SCOPE: &str = "r.tenant_id = ?2 AND (?3 IS NULL OR d.customer_id = ?3)";

pub(super) async fn get(store: &SqliteStore, scope: &Scope, id: RpcId) -> Result<PersistentRpc> {
    let tenant = scope.tenant()?;
    let only = scope.customer();
    let row = store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM rpc r JOIN device d ON d.id = r.device_id
                     WHERE r.id = ?1 AND {IN_SCOPE}"
                ),
                params![id.to_string(), tenant.to_string(), id_text(only)],
                RpcRow::read,
            )
            .optional()?)
        })
        .await?
        .ok_or(StoreError::NotFound("rpc"))?;
    row.open(&store.vault, now_ms())
}

pub(super) async fn list(
    store: &SqliteStore,
    scope: &Scope,
    device: DeviceId,
    status: Option<RpcStatus>,
    sort: RpcSort,
    descending: bool,
    page: &PageRequest,
) -> Result<Page<PersistentRpc>> {
    let tenant = scope.tenant()?;
    let only = scope.customer();
    let rows = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM rpc r JOIN device d ON d.id = r.device_id
                 WHERE r.device_id = ?1 AND {IN_SCOPE} ORDER BY r.seq"
            ))?;
            let rows = stmt
                .query_map(
                    params![device.to_string(), tenant.to_string(), id_text(only)],
                    RpcRow::read,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await?;
    if rows.is_empty() {
        // The device must be in scope, even without commands.
        super::Store::device(store, scope, device).await?;
    }
    let now = now_ms();
    let mut rows: Vec<RpcRow> = rows
        .into_iter()
        .filter(|r| status.is_none_or(|s| r.status(now) == s))
        .collect();
    rows.sort_by(|a, b| {
        let order = match sort {
            RpcSort::CreatedTime => a.created_ms.cmp(&b.created_ms),
            RpcSort::ExpirationTime => a.expires_ms.cmp(&b.expires_ms),
            RpcSort::Status => a.status(now).as_str().cmp(b.status(now).as_str()),
        }
        .then(a.seq.cmp(&b.seq));
        if descending { order.reverse() } else { order }
    });
    // Only the page's commands are opened.
    let page = page.apply(rows);
    let mut data = Vec::with_capacity(page.data.len());
    for row in page.data {
        data.push(row.open(&store.vault, now)?);
    }
    Ok(Page {
        data,
        total_pages: page.total_pages,
        total_elements: page.total_elements,
        has_next: page.has_next,
    })
}

pub(super) async fn delete(store: &SqliteStore, scope: &Scope, id: RpcId) -> Result<()> {
    let tenant = scope.tenant()?;
    let only = scope.customer();
    let device: String = store
        .writer
        .write(move |c| {
            let device: Option<String> = c
                .query_row(
                    &format!(
                        "SELECT r.device_id FROM rpc r JOIN device d ON d.id = r.device_id
                         WHERE r.id = ?1 AND {IN_SCOPE}"
                    ),
                    params![id.to_string(), tenant.to_string(), id_text(only)],
                    |r| r.get(0),
                )
                .optional()?;
            let device = device.ok_or(StoreError::NotFound("rpc"))?;
            c.execute("DELETE FROM rpc WHERE id = ?1", [id.to_string()])?;
            Ok(device)
        })
        .await?;
    store.rpc.forget(parse_id(&device)?, id);
    Ok(())
}
