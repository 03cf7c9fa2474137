//! Erasure: keys first (constant work, whatever the amount of data), rows later.
//!
//! `erase` records the erasure, ends the sessions and frees the email in one transaction,
//! then destroys the keys: from that moment nothing of the person can be read, in this
//! database or any backup of it. `purge` deletes the now unreadable rows in small batches
//! so that the writer is never held for long; it also destroys any key that a crash between
//! the transaction and the key store left alive.

use rusqlite::{OptionalExtension, params};
use thingsafe_core::{Owner, TenantId, UserId, now_ms};
use thingsafe_vault::KeyState;

use super::SqliteStore;
use super::rows::parse_id;
use crate::{Erasure, Reapplied, Result, StoreError};

pub(super) async fn erase(store: &SqliteStore, user: UserId) -> Result<Erasure> {
    let id = uuid::Uuid::new_v4().to_string();
    let erasure = store
        .writer
        .write(move |c| {
            let found: Option<(Option<String>, String)> = c
                .query_row(
                    "SELECT tenant_id, authority FROM app_user
                     WHERE id = ?1 AND id NOT IN (SELECT user_id FROM erasure)",
                    [user.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((tenant, authority)) = found else {
                return Err(StoreError::NotFound("user"));
            };
            let Some(tenant) = tenant else {
                return Err(StoreError::Forbidden(
                    "a system administrator's account is not erased this way: another system administrator deletes it"
                        .into(),
                ));
            };
            let mut erasure = Erasure {
                id,
                user,
                erased_ms: now_ms(),
                tenant: None,
                devices: 0,
                customers: 0,
                other_users: 0,
                destroyed_keys: vec![Owner::User(user).key_name()],
            };
            let mut users = vec![user.to_string()];
            if authority == "TENANT_ADMIN" {
                let other_admins: i64 = c.query_row(
                    "SELECT COUNT(*) FROM app_user
                     WHERE tenant_id = ?1 AND authority = 'TENANT_ADMIN' AND id <> ?2
                       AND id NOT IN (SELECT user_id FROM erasure)",
                    params![tenant, user.to_string()],
                    |r| r.get(0),
                )?;
                if other_admins == 0 {
                    let tenant_id: TenantId = parse_id(&tenant)?;
                    erasure.tenant = Some(tenant_id);
                    erasure.devices = c.query_row(
                        "SELECT COUNT(*) FROM device WHERE tenant_id = ?1",
                        [&tenant],
                        |r| r.get(0),
                    )?;
                    let customers = ids(c, "SELECT id FROM customer WHERE tenant_id = ?1", &tenant)?;
                    let others = ids(
                        c,
                        "SELECT id FROM app_user WHERE tenant_id = ?1
                           AND id NOT IN (SELECT user_id FROM erasure)",
                        &tenant,
                    )?;
                    let others: Vec<String> = others.into_iter().filter(|u| *u != users[0]).collect();
                    erasure.customers = customers.len() as u64;
                    erasure.other_users = others.len() as u64;
                    erasure.destroyed_keys.push(Owner::Tenant(tenant_id).key_name());
                    for customer in &customers {
                        erasure.destroyed_keys.push(format!("customer:{customer}"));
                    }
                    for other in &others {
                        erasure.destroyed_keys.push(format!("user:{other}"));
                    }
                    users.extend(others);
                }
            }
            // The keyed hash of the email goes now (the address may sign up again at once);
            // sessions end, so no refresh token works from here on.
            let mut free = c.prepare_cached(
                "UPDATE app_user SET email_index = randomblob(32), activation_index = NULL
                 WHERE id = ?1",
            )?;
            let mut end = c.prepare_cached("DELETE FROM session WHERE user_id = ?1")?;
            for u in &users {
                free.execute([u])?;
                end.execute([u])?;
            }
            c.execute(
                "INSERT INTO erasure (id, user_id, tenant_id, erased_ms, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    erasure.id,
                    user.to_string(),
                    erasure.tenant.map(|t| t.to_string()),
                    erasure.erased_ms,
                    serde_json::to_string(&erasure).expect("an erasure serialises")
                ],
            )?;
            Ok(erasure)
        })
        .await?;
    destroy_keys(store, &erasure)?;
    Ok(erasure)
}

fn ids(c: &rusqlite::Connection, sql: &str, tenant: &str) -> Result<Vec<String>> {
    let mut stmt = c.prepare(sql)?;
    let rows = stmt
        .query_map([tenant], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn destroy_keys(store: &SqliteStore, erasure: &Erasure) -> Result<()> {
    for name in &erasure.destroyed_keys {
        let owner: Owner = name.parse().map_err(StoreError::Backend)?;
        if !matches!(store.vault.key_state(owner)?, KeyState::Destroyed { .. }) {
            store.vault.shred(owner)?;
        }
    }
    Ok(())
}

pub(super) async fn save_receipt(store: &SqliteStore, erasure: &str, receipt: &str) -> Result<()> {
    let (erasure, receipt) = (erasure.to_string(), receipt.to_string());
    store
        .writer
        .write(move |c| {
            let n = c.execute(
                "UPDATE erasure SET receipt = ?2 WHERE id = ?1",
                params![erasure, receipt],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound("erasure"));
            }
            Ok(())
        })
        .await
}

pub(super) async fn receipt(store: &SqliteStore, erasure: &str) -> Result<Option<String>> {
    let erasure = erasure.to_string();
    store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                "SELECT receipt FROM erasure WHERE id = ?1",
                [erasure],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
        })
        .await
}

/// Deletes up to `max_rows` rows of the oldest unpurged erasure; returns how many.
pub(super) async fn purge(store: &SqliteStore, max_rows: usize) -> Result<usize> {
    let next: Option<String> = store
        .readers
        .read(|c| {
            Ok(c.query_row(
                "SELECT outcome FROM erasure WHERE purged_ms IS NULL ORDER BY erased_ms LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await?;
    let Some(outcome) = next else {
        return Ok(0);
    };
    let erasure: Erasure = serde_json::from_str(&outcome)
        .map_err(|e| StoreError::Backend(format!("an erasure record does not parse: {e}")))?;
    destroy_keys(store, &erasure)?;
    let limit = max_rows.max(1) as i64;
    store
        .writer
        .write(move |c| {
            let users: Vec<String> = erasure
                .destroyed_keys
                .iter()
                .filter_map(|k| k.strip_prefix("user:").map(str::to_string))
                .collect();
            let mut deleted = 0usize;
            if let Some(tenant) = erasure.tenant {
                let tenant = tenant.to_string();
                // One device at a time: its telemetry chunks in batches, then the device
                // (its log rows, latest values, attributes and credentials cascade).
                let device: Option<String> = c
                    .query_row(
                        "SELECT id FROM device WHERE tenant_id = ?1 LIMIT 1",
                        [&tenant],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(device) = device {
                    deleted += c.execute(
                        "DELETE FROM telemetry WHERE id IN
                             (SELECT id FROM telemetry WHERE device_id = ?1 LIMIT ?2)",
                        params![device, limit],
                    )?;
                    if deleted == 0 {
                        deleted += c.execute("DELETE FROM device WHERE id = ?1", [&device])?;
                    }
                    return Ok(deleted);
                }
                deleted += c.execute("DELETE FROM tenant WHERE id = ?1", [&tenant])?;
            } else {
                deleted += c.execute("DELETE FROM app_user WHERE id = ?1", [&users[0]])?;
            }
            let mut consents = c.prepare_cached("DELETE FROM consent WHERE user_id = ?1")?;
            for u in &users {
                deleted += consents.execute([u])?;
            }
            c.execute(
                "UPDATE erasure SET purged_ms = ?2 WHERE id = ?1",
                params![erasure.id, now_ms()],
            )?;
            Ok(deleted.max(1))
        })
        .await
}

/// Erasures that the key store knows of and the database does not: a data backup taken
/// before them and restored with the current key store brings their rows back, sealed
/// with destroyed keys. Nothing of them can be read, but their rows, keyed email hashes
/// and sessions would linger; this removes them the way the erasure did (a tenant through
/// the batched purge, a person or customer at once).
pub(super) async fn reapply(store: &SqliteStore) -> Result<Reapplied> {
    type Users = Vec<(String, Option<String>, Option<String>)>;
    let (users, customers, tenants): (Users, Vec<(String, String)>, Vec<String>) = store
        .readers
        .read(|c| {
            let users = c
                .prepare(
                    "SELECT id, tenant_id, customer_id FROM app_user
                     WHERE id NOT IN (SELECT user_id FROM erasure)",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let customers = c
                .prepare("SELECT id, tenant_id FROM customer")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let tenants = c
                .prepare(
                    "SELECT id FROM tenant WHERE id NOT IN
                       (SELECT tenant_id FROM erasure WHERE tenant_id IS NOT NULL)",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((users, customers, tenants))
        })
        .await?;
    let destroyed = |owner: Owner| -> Result<bool> {
        Ok(matches!(
            store.vault.key_state(owner)?,
            KeyState::Destroyed { .. }
        ))
    };
    let mut erased_tenants = Vec::new();
    for tenant in &tenants {
        if destroyed(Owner::Tenant(parse_id(tenant)?))? {
            erased_tenants.push(tenant.clone());
        }
    }
    // A customer of an erased tenant goes with the tenant's purge.
    let mut erased_customers = Vec::new();
    for (customer, tenant) in &customers {
        if !erased_tenants.contains(tenant) && destroyed(Owner::Customer(parse_id(customer)?))? {
            erased_customers.push(customer.clone());
        }
    }
    let mut tenant_erasures = Vec::new();
    let mut erased_users = Vec::new();
    for tenant in &erased_tenants {
        let members: Vec<&String> = users
            .iter()
            .filter(|(_, t, _)| t.as_ref() == Some(tenant))
            .map(|(id, _, _)| id)
            .collect();
        let Some(first) = members.first() else {
            tracing::warn!(tenant = %tenant, "a tenant with a destroyed key and no users is left for an operator");
            continue;
        };
        let tenant_id: TenantId = parse_id(tenant)?;
        let mut destroyed_keys = vec![Owner::Tenant(tenant_id).key_name()];
        destroyed_keys.extend(members.iter().map(|u| format!("user:{u}")));
        tenant_erasures.push(Erasure {
            id: uuid::Uuid::new_v4().to_string(),
            user: parse_id(first)?,
            erased_ms: now_ms(),
            tenant: Some(tenant_id),
            devices: 0,
            customers: 0,
            other_users: members.len() as u64 - 1,
            destroyed_keys,
        });
    }
    for (user, tenant, customer) in &users {
        let in_erased_tenant = tenant.as_ref().is_some_and(|t| erased_tenants.contains(t));
        let in_erased_customer = customer
            .as_ref()
            .is_some_and(|k| erased_customers.contains(k));
        if !in_erased_tenant && (in_erased_customer || destroyed(Owner::User(parse_id(user)?))?) {
            erased_users.push(user.clone());
        }
    }
    let reapplied = Reapplied {
        tenants: tenant_erasures.len(),
        customers: erased_customers.len(),
        users: erased_users.len(),
    };
    if reapplied == Reapplied::default() {
        return Ok(reapplied);
    }
    store
        .writer
        .write(move |c| {
            for erasure in &tenant_erasures {
                let tenant = erasure.tenant.map(|t| t.to_string());
                c.execute(
                    "UPDATE app_user SET email_index = randomblob(32), activation_index = NULL
                     WHERE tenant_id = ?1",
                    [&tenant],
                )?;
                c.execute(
                    "DELETE FROM session WHERE user_id IN
                       (SELECT id FROM app_user WHERE tenant_id = ?1)",
                    [&tenant],
                )?;
                c.execute(
                    "INSERT INTO erasure (id, user_id, tenant_id, erased_ms, outcome)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        erasure.id,
                        erasure.user.to_string(),
                        tenant,
                        erasure.erased_ms,
                        serde_json::to_string(erasure).expect("an erasure serialises")
                    ],
                )?;
            }
            for user in &erased_users {
                c.execute("DELETE FROM app_user WHERE id = ?1", [user])?;
                c.execute("DELETE FROM consent WHERE user_id = ?1", [user])?;
            }
            for customer in &erased_customers {
                c.execute("DELETE FROM customer WHERE id = ?1", [customer])?;
            }
            Ok(())
        })
        .await?;
    Ok(reapplied)
}
