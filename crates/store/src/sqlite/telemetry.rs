//! Telemetry and attributes in SQLite. One `telemetry` row per device message, its points
//! sealed together; one sealed `telemetry_latest` row per (device, key); one sealed
//! `attribute` row per (device, scope, key). Key names are sealed too: rows are found by
//! keyed hashes of the names.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use thingsafe_core::payload::{Point, Value};
use thingsafe_core::{Attribute, AttributeScope, Device, Owner, now_ms};

use super::SqliteStore;
use super::rows::aad;
use crate::codec::{decode_entry, decode_points, encode_entry, encode_points};
use crate::{Change, Result, StoreError, TelemetryQuery};

/// The keyed hash that finds a device's latest value of `key`.
pub(super) fn telemetry_key_index(
    vault: &thingsafe_vault::Vault,
    device: thingsafe_core::DeviceId,
    key: &str,
) -> Vec<u8> {
    let mut value = device.as_uuid().as_bytes().to_vec();
    value.extend_from_slice(key.as_bytes());
    vault.blind_index("telemetry.key", &value).to_vec()
}

fn owner_of(text: &str) -> Result<Owner> {
    text.parse().map_err(StoreError::Backend)
}

impl SqliteStore {
    fn telemetry_key_index(&self, device: &Device, key: &str) -> Vec<u8> {
        telemetry_key_index(&self.vault, device.id, key)
    }

    fn attribute_key_index(&self, device: &Device, scope: AttributeScope, key: &str) -> Vec<u8> {
        let mut value = device.id.as_uuid().as_bytes().to_vec();
        value.extend_from_slice(scope.as_str().as_bytes());
        value.push(0);
        value.extend_from_slice(key.as_bytes());
        self.vault.blind_index("attribute.key", &value).to_vec()
    }

    /// Opens a sealed blob of `owner`; `None` when the owner was erased.
    fn open_blob(
        &self,
        owner: &str,
        field: &str,
        row: &str,
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        match self
            .vault
            .unseal(owner_of(owner)?, aad(field, row).as_bytes(), sealed)
        {
            Ok(bytes) => Ok(Some(bytes)),
            Err(thingsafe_vault::VaultError::KeyDestroyed(..)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn publish(&self, change: Change) {
        self.changes.send(change);
    }

    pub(super) async fn insert_telemetry(&self, device: &Device, points: Vec<Point>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let owner = device.data_owner();
        let row = device.id.to_string();
        let ts_min = points.iter().map(|p| p.ts).min().expect("not empty");
        let ts_max = points.iter().map(|p| p.ts).max().expect("not empty");
        let plain = encode_points(&points);
        let sealed = self
            .vault
            .seal(owner, aad("telemetry", &row).as_bytes(), &plain)?;
        let owner_name = owner.key_name();
        let version = match self
            .policy_version
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => None,
            v => Some(v),
        };
        let (id, sealed) = self
            .writer
            .write_one(move |c| {
                c.prepare_cached(
                    "INSERT INTO telemetry_log (device_id, owner, ts_min, ts_max, points, policy_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![row, owner_name, ts_min, ts_max, sealed, version])
                .map_err(missing_device)?;
                Ok((c.last_insert_rowid(), sealed))
            })
            .await?;
        // Committed: the flush may take the plaintext from here instead of opening the row.
        self.flusher.unflushed.insert(id, &sealed, plain);
        metrics::counter!("thingsafe_telemetry_points_total").increment(points.len() as u64);
        self.publish(Change::Telemetry {
            device: device.id,
            tenant: device.tenant_id,
            points,
        });
        Ok(())
    }

    /// The newest point of each key: the persisted latest values (kept by the flush) and
    /// the device's rows still in the log, read in one snapshot.
    pub(super) async fn read_latest(
        &self,
        device: &Device,
        keys: Option<Vec<String>>,
    ) -> Result<Vec<Point>> {
        let row = device.id.to_string();
        let device_row = row.clone();
        type Rows = (Vec<(String, i64, Vec<u8>)>, Vec<(String, Vec<u8>)>);
        let (persisted, unflushed): Rows = self
            .readers
            .read(move |c| {
                let tx = c.unchecked_transaction()?;
                let persisted = tx
                    .prepare_cached(
                        "SELECT owner, ts, entry FROM telemetry_latest WHERE device_id = ?1",
                    )?
                    .query_map([&device_row], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                let unflushed = tx
                    .prepare_cached("SELECT owner, points FROM telemetry_log WHERE device_id = ?1")?
                    .query_map([&device_row], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                tx.finish()?;
                Ok((persisted, unflushed))
            })
            .await?;
        let mut newest: BTreeMap<String, Point> = BTreeMap::new();
        let mut offer = |p: Point| {
            if keys.as_ref().is_none_or(|k| k.contains(&p.key))
                && newest.get(&p.key).is_none_or(|n| p.ts >= n.ts)
            {
                newest.insert(p.key.clone(), p);
            }
        };
        for (owner, ts, sealed) in persisted {
            if let Some(bytes) = self.open_blob(&owner, "telemetry_latest", &row, &sealed)? {
                let (key, value) = decode_entry(&bytes)?;
                offer(Point { ts, key, value });
            }
        }
        for (owner, sealed) in unflushed {
            if let Some(bytes) = self.open_blob(&owner, "telemetry", &row, &sealed)? {
                decode_points(&bytes)?.into_iter().for_each(&mut offer);
            }
        }
        Ok(newest.into_values().collect())
    }

    /// The points asked for, each with the policy version its batch was received under.
    pub(super) async fn read_telemetry(
        &self,
        device: &Device,
        q: TelemetryQuery,
    ) -> Result<Vec<(Point, Option<u32>)>> {
        let row = device.id.to_string();
        let device_row = row.clone();
        let (start, end) = (q.start_ms, q.end_ms);
        let rows: Vec<(String, Vec<u8>, Option<u32>)> = self
            .readers
            .read(move |c| {
                // One statement, one snapshot: a flush moving rows from the log into
                // chunks is seen entirely or not at all.
                let mut stmt = c.prepare_cached(
                    "SELECT owner, points, policy_version FROM telemetry
                     WHERE device_id = ?1 AND ts_max >= ?2 AND ts_min <= ?3
                     UNION ALL
                     SELECT owner, points, policy_version FROM telemetry_log
                     WHERE device_id = ?1 AND ts_max >= ?2 AND ts_min <= ?3",
                )?;
                let rows = stmt
                    .query_map(params![device_row, start, end], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut by_key: BTreeMap<String, Vec<(Point, Option<u32>)>> = BTreeMap::new();
        for (owner, sealed, version) in rows {
            let Some(bytes) = self.open_blob(&owner, "telemetry", &row, &sealed)? else {
                continue;
            };
            for p in decode_points(&bytes)? {
                if p.ts >= start && p.ts <= end && (q.keys.is_empty() || q.keys.contains(&p.key)) {
                    by_key.entry(p.key.clone()).or_default().push((p, version));
                }
            }
        }
        let mut out = Vec::new();
        for (_, mut points) in by_key {
            if q.descending {
                points.sort_by_key(|(p, _)| std::cmp::Reverse(p.ts));
            } else {
                points.sort_by_key(|(p, _)| p.ts);
            }
            out.extend(points.into_iter().take(q.limit));
        }
        Ok(out)
    }

    pub(super) async fn remove_telemetry(
        &self,
        device: &Device,
        keys: Vec<String>,
        start: i64,
        end: i64,
        rewrite_latest: bool,
    ) -> Result<usize> {
        // Deletion rewrites chunks: move everything acknowledged so far into them first.
        self.flusher.flush_all().await?;
        let vault = self.vault.clone();
        let row = device.id.to_string();
        let key_indexes: Vec<(String, Vec<u8>)> = keys
            .iter()
            .map(|k| (k.clone(), self.telemetry_key_index(device, k)))
            .collect();
        // Runs in the writer: reading, re-sealing and rewriting are one transaction.
        self.writer
            .write(move |c| {
                let telemetry_aad = aad("telemetry", &row);
                let latest_aad = aad("telemetry_latest", &row);
                let open = |owner: &str, field_aad: &str, sealed: &[u8]| -> Result<Option<(Owner, Vec<u8>)>> {
                    let owner = owner_of(owner)?;
                    match vault.unseal(owner, field_aad.as_bytes(), sealed) {
                        Ok(bytes) => Ok(Some((owner, bytes))),
                        Err(thingsafe_vault::VaultError::KeyDestroyed(..)) => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                };
                let rows: Vec<(i64, String, Vec<u8>)> = c
                    .prepare_cached(
                        "SELECT id, owner, points FROM telemetry WHERE device_id = ?1 AND ts_max >= ?2 AND ts_min <= ?3",
                    )?
                    .query_map(params![row, start, end], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                let doomed = |p: &Point| p.ts >= start && p.ts <= end && keys.contains(&p.key);
                let mut deleted = 0;
                for (id, owner, sealed) in rows {
                    let Some((owner, bytes)) = open(&owner, &telemetry_aad, &sealed)? else {
                        continue;
                    };
                    let points = decode_points(&bytes)?;
                    let before = points.len();
                    let kept: Vec<Point> = points.into_iter().filter(|p| !doomed(p)).collect();
                    if kept.len() == before {
                        continue;
                    }
                    deleted += before - kept.len();
                    if kept.is_empty() {
                        c.execute("DELETE FROM telemetry WHERE id = ?1", [id])?;
                    } else {
                        let resealed = vault.seal(owner, telemetry_aad.as_bytes(), &encode_points(&kept))?;
                        let ts_min = kept.iter().map(|p| p.ts).min().expect("not empty");
                        let ts_max = kept.iter().map(|p| p.ts).max().expect("not empty");
                        c.execute(
                            "UPDATE telemetry SET points = ?2, ts_min = ?3, ts_max = ?4 WHERE id = ?1",
                            params![id, resealed, ts_min, ts_max],
                        )?;
                    }
                }
                for (key, index) in key_indexes {
                    let latest: Option<i64> = c
                        .query_row(
                            "SELECT ts FROM telemetry_latest WHERE device_id = ?1 AND key_index = ?2",
                            params![row, index],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if !latest.is_some_and(|ts| ts >= start && ts <= end) {
                        continue;
                    }
                    c.execute(
                        "DELETE FROM telemetry_latest WHERE device_id = ?1 AND key_index = ?2",
                        params![row, index],
                    )?;
                    if !rewrite_latest {
                        continue;
                    }
                    let mut newest: Option<(Owner, Point)> = None;
                    let mut stmt = c.prepare_cached(
                        "SELECT owner, points FROM telemetry WHERE device_id = ?1 ORDER BY ts_max DESC",
                    )?;
                    let mut cursor = stmt.query([&row])?;
                    while let Some(r) = cursor.next()? {
                        let (owner, sealed): (String, Vec<u8>) = (r.get(0)?, r.get(1)?);
                        let Some((owner, bytes)) = open(&owner, &telemetry_aad, &sealed)? else {
                            continue;
                        };
                        for p in decode_points(&bytes)?.into_iter().filter(|p| p.key == key) {
                            if newest.as_ref().is_none_or(|(_, n)| p.ts > n.ts) {
                                newest = Some((owner, p));
                            }
                        }
                    }
                    if let Some((owner, p)) = newest {
                        let entry = vault.seal(owner, latest_aad.as_bytes(), &encode_entry(&p.key, &p.value))?;
                        c.execute(
                            "INSERT INTO telemetry_latest (device_id, key_index, owner, ts, entry) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![row, index, owner.key_name(), p.ts, entry],
                        )?;
                    }
                }
                Ok(deleted)
            })
            .await
    }

    pub(super) async fn upsert_attributes(
        &self,
        device: &Device,
        scope: AttributeScope,
        attributes: Vec<(String, Value)>,
    ) -> Result<()> {
        if attributes.is_empty() {
            return Ok(());
        }
        let owner = device.data_owner();
        let row = device.id.to_string();
        let now = now_ms();
        let mut sealed = Vec::with_capacity(attributes.len());
        for (key, value) in &attributes {
            let entry = self.vault.seal(
                owner,
                aad("attribute", &row).as_bytes(),
                &encode_entry(key, value),
            )?;
            sealed.push((self.attribute_key_index(device, scope, key), entry));
        }
        let owner_name = owner.key_name();
        self.writer
            .write(move |c| {
                let mut upsert = c.prepare_cached(
                    "INSERT INTO attribute (device_id, scope, key_index, owner, last_update_ms, entry)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (device_id, scope, key_index) DO UPDATE
                     SET owner = excluded.owner, last_update_ms = excluded.last_update_ms, entry = excluded.entry",
                )?;
                for (key_index, entry) in sealed {
                    upsert
                        .execute(params![row, scope.as_str(), key_index, owner_name, now, entry])
                        .map_err(missing_device)?;
                }
                Ok(())
            })
            .await?;
        self.publish(Change::Attributes {
            device: device.id,
            tenant: device.tenant_id,
            scope,
            attributes,
        });
        Ok(())
    }

    pub(super) async fn delete_attributes(
        &self,
        device: &Device,
        scope: AttributeScope,
        keys: Vec<String>,
    ) -> Result<()> {
        let indexes: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| self.attribute_key_index(device, scope, k))
            .collect();
        let row = device.id.to_string();
        self.writer
            .write(move |c| {
                let mut delete = c.prepare_cached(
                    "DELETE FROM attribute WHERE device_id = ?1 AND scope = ?2 AND key_index = ?3",
                )?;
                for index in indexes {
                    delete.execute(params![row, scope.as_str(), index])?;
                }
                Ok(())
            })
            .await?;
        self.publish(Change::AttributesDeleted {
            device: device.id,
            tenant: device.tenant_id,
            scope,
            keys,
        });
        Ok(())
    }

    pub(super) async fn read_attributes(
        &self,
        device: &Device,
        scope: AttributeScope,
        keys: Option<Vec<String>>,
    ) -> Result<Vec<Attribute>> {
        let row = device.id.to_string();
        let device_row = row.clone();
        let rows: Vec<(String, i64, Vec<u8>)> = self
            .readers
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT owner, last_update_ms, entry FROM attribute WHERE device_id = ?1 AND scope = ?2",
                )?;
                let rows = stmt
                    .query_map(params![device_row, scope.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (owner, last_update_ms, sealed) in rows {
            let Some(bytes) = self.open_blob(&owner, "attribute", &row, &sealed)? else {
                continue;
            };
            let (key, value) = decode_entry(&bytes)?;
            if keys.as_ref().is_none_or(|k| k.contains(&key)) {
                out.push(Attribute {
                    scope,
                    key,
                    value,
                    last_update_ms,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

/// A foreign-key failure here means the device was deleted meanwhile.
fn missing_device(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::NotFound("device"),
        _ => e.into(),
    }
}
