//! Anonymised hourly aggregates of expired telemetry (table `telemetry_aggregate`): per
//! key and hour, the count, minimum, maximum and sum of numeric values, across every
//! device of every tenant. No device, owner or tenant is kept; text, booleans and JSON
//! values are not aggregated.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use thingsafe_core::TimestampMs;
use thingsafe_core::payload::{Point, Value};

use super::SqliteStore;
use crate::{HourlyAggregate, Result};

const HOUR_MS: i64 = 60 * 60 * 1000;

/// Expired points being folded before they are deleted, in the same transaction.
#[derive(Default)]
pub(super) struct Fold(BTreeMap<(String, i64), (i64, f64, f64, f64)>);

impl Fold {
    pub(super) fn add(&mut self, point: &Point) {
        let x = match point.value {
            Value::Long(v) => v as f64,
            Value::Double(v) if v.is_finite() => v,
            _ => return,
        };
        let hour = point.ts.div_euclid(HOUR_MS) * HOUR_MS;
        let a = self
            .0
            .entry((point.key.clone(), hour))
            .or_insert((0, x, x, 0.0));
        a.0 += 1;
        a.1 = a.1.min(x);
        a.2 = a.2.max(x);
        a.3 += x;
    }

    pub(super) fn write(self, c: &Connection) -> Result<()> {
        let mut upsert = c.prepare_cached(
            "INSERT INTO telemetry_aggregate (key, hour_ms, count, min, max, sum)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (key, hour_ms) DO UPDATE SET count = count + excluded.count,
                 min = MIN(min, excluded.min), max = MAX(max, excluded.max),
                 sum = sum + excluded.sum",
        )?;
        for ((key, hour), (count, min, max, sum)) in self.0 {
            upsert.execute(params![key, hour, count, min, max, sum])?;
        }
        Ok(())
    }
}

/// The hourly aggregates of `key` whose hour starts in `from_ms..=to_ms`, oldest first.
pub(super) async fn read(
    store: &SqliteStore,
    key: String,
    from_ms: TimestampMs,
    to_ms: TimestampMs,
) -> Result<Vec<HourlyAggregate>> {
    store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT hour_ms, count, min, max, sum FROM telemetry_aggregate
                 WHERE key = ?1 AND hour_ms BETWEEN ?2 AND ?3 ORDER BY hour_ms LIMIT 10000",
            )?;
            let rows = stmt
                .query_map(params![key, from_ms, to_ms], |r| {
                    let count: i64 = r.get(1)?;
                    let sum: f64 = r.get(4)?;
                    Ok(HourlyAggregate {
                        key: key.clone(),
                        hour_ms: r.get(0)?,
                        count: count as u64,
                        min: r.get(2)?,
                        max: r.get(3)?,
                        mean: sum / count as f64,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
}
