//! Reading and writing device data as a signed-in user: ThingsBoard's
//! `/api/plugins/telemetry/DEVICE/{id}/...`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use thingsafe_core::payload::{self, Point, Value};
use thingsafe_core::{AttributeScope, Authority, DeviceId};
use thingsafe_store::TelemetryQuery;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, parse_id};

const READERS: &[Authority] = &[Authority::TenantAdmin, Authority::CustomerUser];

fn entity(entity_type: &str, id: &str) -> ApiResult<DeviceId> {
    if entity_type != "DEVICE" {
        return Err(ApiError::bad_request(format!(
            "entity type {entity_type:?} is not supported here; use DEVICE"
        )));
    }
    parse_id("device", id)
}

fn keys_param(raw: &Option<String>) -> Option<Vec<String>> {
    raw.as_ref()
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|k| !k.is_empty())
}

fn attribute_scope(raw: &str) -> ApiResult<AttributeScope> {
    raw.parse().map_err(ApiError::bad_request)
}

fn render(value: &Value, strict: bool) -> Json {
    if strict {
        value.to_json()
    } else {
        Json::String(value.as_string())
    }
}

pub(super) async fn timeseries_keys(
    State(state): State<AppState>,
    principal: Principal,
    Path((entity_type, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<String>>> {
    principal.require(READERS)?;
    let id = entity(&entity_type, &id)?;
    Ok(axum::Json(
        state.store.telemetry_keys(&principal.scope(), id).await?,
    ))
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(super) struct TimeseriesParams {
    keys: Option<String>,
    start_ts: Option<i64>,
    end_ts: Option<i64>,
    limit: Option<usize>,
    order_by: Option<String>,
    agg: Option<String>,
    interval: Option<i64>,
    use_strict_data_types: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Aggregation {
    None,
    Min,
    Max,
    Avg,
    Sum,
    Count,
}

impl std::str::FromStr for Aggregation {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        Ok(match s {
            "NONE" => Aggregation::None,
            "MIN" => Aggregation::Min,
            "MAX" => Aggregation::Max,
            "AVG" => Aggregation::Avg,
            "SUM" => Aggregation::Sum,
            "COUNT" => Aggregation::Count,
            other => {
                return Err(ApiError::bad_request(format!(
                    "agg {other:?} is not one of NONE, MIN, MAX, AVG, SUM, COUNT"
                )));
            }
        })
    }
}

/// Latest values without a range; raw or aggregated points within `startTs`..`endTs`.
/// Answers `{"key": [{"ts": ms, "value": v}, ...]}`; values are strings unless
/// `useStrictDataTypes=true`.
pub(super) async fn timeseries(
    State(state): State<AppState>,
    principal: Principal,
    Path((entity_type, id)): Path<(String, String)>,
    Query(params): Query<TimeseriesParams>,
) -> ApiResult<axum::Json<Json>> {
    principal.require(READERS)?;
    let id = entity(&entity_type, &id)?;
    let strict = params.use_strict_data_types.unwrap_or(false);
    let keys = keys_param(&params.keys);
    let scope = principal.scope();
    let points = match (params.start_ts, params.end_ts) {
        (None, None) => state.store.latest_telemetry(&scope, id, keys).await?,
        (Some(start_ms), Some(end_ms)) => {
            if end_ms < start_ms {
                return Err(ApiError::bad_request("endTs must not be before startTs"));
            }
            let agg: Aggregation = params.agg.as_deref().unwrap_or("NONE").parse()?;
            let descending = match params.order_by.as_deref().unwrap_or("DESC") {
                "DESC" => true,
                "ASC" => false,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "orderBy {other:?} is not ASC or DESC"
                    )));
                }
            };
            let limit = params.limit.unwrap_or(100).max(1);
            let raw_limit = if agg == Aggregation::None {
                limit
            } else {
                usize::MAX
            };
            let raw = state
                .store
                .telemetry(
                    &scope,
                    id,
                    TelemetryQuery {
                        keys: keys.unwrap_or_default(),
                        start_ms,
                        end_ms,
                        limit: raw_limit,
                        descending,
                    },
                )
                .await?;
            if agg == Aggregation::None {
                raw
            } else {
                let interval = params.interval.ok_or_else(|| {
                    ApiError::bad_request("interval (ms) is required with agg other than NONE")
                })?;
                if interval <= 0 {
                    return Err(ApiError::bad_request("interval must be above 0 ms"));
                }
                aggregate(raw, agg, start_ms, end_ms, interval, descending, limit)?
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "give both startTs and endTs for a range, or neither for the latest values",
            ));
        }
    };
    let mut out: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    for p in points {
        out.entry(p.key.clone())
            .or_default()
            .push(json!({ "ts": p.ts, "value": render(&p.value, strict) }));
    }
    Ok(axum::Json(json!(out)))
}

/// Most buckets one request may ask for, so that a tiny interval cannot exhaust memory.
const MAX_BUCKETS: i64 = 100_000;

/// ThingsBoard's aggregation: buckets of `interval` from `start`, the last one cut at
/// `end`; each bucket's point is stamped at its middle. Empty buckets are left out.
fn aggregate(
    points: Vec<Point>,
    agg: Aggregation,
    start: i64,
    end: i64,
    interval: i64,
    descending: bool,
    limit: usize,
) -> ApiResult<Vec<Point>> {
    if (end - start) / interval > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "that range and interval make more than {MAX_BUCKETS} buckets; use a larger interval"
        )));
    }
    let mut by_key: BTreeMap<String, BTreeMap<i64, Vec<Value>>> = BTreeMap::new();
    for p in points {
        let bucket = start + (p.ts - start) / interval * interval;
        by_key
            .entry(p.key)
            .or_default()
            .entry(bucket)
            .or_default()
            .push(p.value);
    }
    let mut out = Vec::new();
    for (key, buckets) in by_key {
        let mut series: Vec<Point> = buckets
            .into_iter()
            .filter_map(|(bucket_start, values)| {
                let bucket_end = (bucket_start + interval).min(end);
                let ts = bucket_start + (bucket_end - bucket_start) / 2;
                fold(agg, &values).map(|value| Point {
                    ts,
                    key: key.clone(),
                    value,
                })
            })
            .collect();
        if descending {
            series.reverse();
        }
        out.extend(series.into_iter().take(limit));
    }
    Ok(out)
}

fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Long(n) => Some(*n as f64),
        Value::Double(d) => Some(*d),
        _ => None,
    }
}

/// One bucket's value. Longs stay longs for MIN, MAX and SUM when every value is a long;
/// AVG is a double; COUNT counts every value. Buckets without numbers give nothing
/// (except COUNT).
fn fold(agg: Aggregation, values: &[Value]) -> Option<Value> {
    if agg == Aggregation::Count {
        return Some(Value::Long(values.len() as i64));
    }
    let all_long = values.iter().all(|v| matches!(v, Value::Long(_)));
    let longs = || {
        values.iter().filter_map(|v| {
            if let Value::Long(n) = v {
                Some(*n)
            } else {
                None
            }
        })
    };
    let numbers: Vec<f64> = values.iter().filter_map(numeric).collect();
    if numbers.is_empty() {
        return None;
    }
    Some(match agg {
        Aggregation::Min if all_long => Value::Long(longs().min()?),
        Aggregation::Max if all_long => Value::Long(longs().max()?),
        Aggregation::Sum if all_long => Value::Long(longs().fold(0i64, |a, b| a.saturating_add(b))),
        Aggregation::Min => Value::Double(numbers.iter().copied().fold(f64::INFINITY, f64::min)),
        Aggregation::Max => {
            Value::Double(numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        }
        Aggregation::Sum => Value::Double(numbers.iter().sum()),
        Aggregation::Avg => Value::Double(numbers.iter().sum::<f64>() / numbers.len() as f64),
        Aggregation::Count | Aggregation::None => unreachable!("handled above"),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeleteTimeseriesParams {
    keys: Option<String>,
    delete_all_data_for_keys: Option<bool>,
    start_ts: Option<i64>,
    end_ts: Option<i64>,
    rewrite_latest_if_deleted: Option<bool>,
}

/// ThingsBoard's `DELETE .../timeseries/delete`: the points of `keys` in a range, or all of
/// them with `deleteAllDataForKeys=true`.
pub(super) async fn delete_timeseries(
    State(state): State<AppState>,
    principal: Principal,
    Path((entity_type, id)): Path<(String, String)>,
    Query(params): Query<DeleteTimeseriesParams>,
) -> ApiResult<StatusCode> {
    principal.require(&[Authority::TenantAdmin])?;
    let id = entity(&entity_type, &id)?;
    let keys = keys_param(&params.keys)
        .ok_or_else(|| ApiError::bad_request("keys (comma-separated) are required"))?;
    let (start, end) = if params.delete_all_data_for_keys.unwrap_or(false) {
        (i64::MIN, i64::MAX)
    } else {
        match (params.start_ts, params.end_ts) {
            (Some(s), Some(e)) if s <= e => (s, e),
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request("endTs must not be before startTs"));
            }
            _ => {
                return Err(ApiError::bad_request(
                    "give startTs and endTs, or deleteAllDataForKeys=true",
                ));
            }
        }
    };
    let device = state.store.device(&principal.scope(), id).await?;
    let deleted = state
        .store
        .delete_telemetry(
            &device,
            keys,
            start,
            end,
            params.rewrite_latest_if_deleted.unwrap_or(false),
        )
        .await?;
    tracing::info!(device = %device.id, deleted, "telemetry deleted");
    Ok(StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct KeysParam {
    keys: Option<String>,
}

/// `[{"key", "value", "lastUpdateTs"}]` of one scope, or of all three.
pub(super) async fn attribute_values(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<Vec<String>>,
    Query(params): Query<KeysParam>,
) -> ApiResult<axum::Json<Vec<Json>>> {
    principal.require(READERS)?;
    let (id, scopes) = attribute_target(&path)?;
    let keys = keys_param(&params.keys);
    let mut out = Vec::new();
    for scope in scopes {
        for a in state
            .store
            .attributes(&principal.scope(), id, scope, keys.clone())
            .await?
        {
            out.push(json!({ "key": a.key, "value": a.value.to_json(), "lastUpdateTs": a.last_update_ms }));
        }
    }
    Ok(axum::Json(out))
}

pub(super) async fn attribute_keys(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<Vec<String>>,
) -> ApiResult<axum::Json<Vec<String>>> {
    principal.require(READERS)?;
    let (id, scopes) = attribute_target(&path)?;
    let mut out = Vec::new();
    for scope in scopes {
        out.extend(
            state
                .store
                .attributes(&principal.scope(), id, scope, None)
                .await?
                .into_iter()
                .map(|a| a.key),
        );
    }
    Ok(axum::Json(out))
}

/// `[DEVICE, id]` or `[DEVICE, id, SCOPE]` from the path.
fn attribute_target(path: &[String]) -> ApiResult<(DeviceId, Vec<AttributeScope>)> {
    match path {
        [entity_type, id] => Ok((entity(entity_type, id)?, AttributeScope::ALL.to_vec())),
        [entity_type, id, scope] => Ok((entity(entity_type, id)?, vec![attribute_scope(scope)?])),
        _ => Err(ApiError::not_found("No such attributes path")),
    }
}

/// Sets SHARED_SCOPE (delivered to the device) or SERVER_SCOPE attributes from a JSON
/// object. CLIENT_SCOPE belongs to the device.
pub(super) async fn save_attributes(
    State(state): State<AppState>,
    principal: Principal,
    Path((entity_type, id, scope)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    principal.require(&[Authority::TenantAdmin])?;
    let id = entity(&entity_type, &id)?;
    let scope = attribute_scope(&scope)?;
    if scope == AttributeScope::Client {
        return Err(ApiError::bad_request(
            "CLIENT_SCOPE attributes are reported by the device; set SHARED_SCOPE or SERVER_SCOPE",
        ));
    }
    let attributes = payload::parse_attributes(&body)
        .map_err(|e| ApiError::bad_request(format!("Invalid attributes: {e}")))?;
    let device = state.store.device(&principal.scope(), id).await?;
    state
        .store
        .save_attributes(&device, scope, attributes)
        .await?;
    Ok(StatusCode::OK)
}

pub(super) async fn delete_attributes(
    State(state): State<AppState>,
    principal: Principal,
    Path((entity_type, id, scope)): Path<(String, String, String)>,
    Query(params): Query<KeysParam>,
) -> ApiResult<StatusCode> {
    principal.require(&[Authority::TenantAdmin])?;
    let id = entity(&entity_type, &id)?;
    let scope = attribute_scope(&scope)?;
    let keys = keys_param(&params.keys)
        .ok_or_else(|| ApiError::bad_request("keys (comma-separated) are required"))?;
    let device = state.store.device(&principal.scope(), id).await?;
    state.store.remove_attributes(&device, scope, keys).await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ts: i64, v: Value) -> Point {
        Point {
            ts,
            key: "t".into(),
            value: v,
        }
    }

    #[test]
    fn buckets_are_stamped_at_their_middle_and_cut_at_the_end() {
        let points = vec![
            p(0, Value::Long(1)),
            p(5, Value::Long(3)),
            p(10, Value::Long(10)),
            p(24, Value::Double(0.5)),
        ];
        let avg = aggregate(points.clone(), Aggregation::Avg, 0, 25, 10, false, 100).unwrap();
        assert_eq!(
            avg.iter()
                .map(|p| (p.ts, p.value.clone()))
                .collect::<Vec<_>>(),
            vec![
                (5, Value::Double(2.0)),
                (15, Value::Double(10.0)),
                (22, Value::Double(0.5)),
            ]
        );
        let sum = aggregate(points.clone(), Aggregation::Sum, 0, 25, 10, true, 2).unwrap();
        assert_eq!(
            sum.iter().map(|p| p.value.clone()).collect::<Vec<_>>(),
            vec![Value::Double(0.5), Value::Long(10)]
        );
        let count = aggregate(points, Aggregation::Count, 0, 25, 100, false, 100).unwrap();
        assert_eq!(count[0].value, Value::Long(4));
        assert!(aggregate(vec![], Aggregation::Avg, 0, i64::MAX, 1, false, 1).is_err());
    }

    #[test]
    fn non_numbers_only_count() {
        let s = vec![p(1, Value::String("x".into()))];
        assert!(
            aggregate(s.clone(), Aggregation::Avg, 0, 10, 10, false, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            aggregate(s, Aggregation::Count, 0, 10, 10, false, 10)
                .unwrap()
                .len(),
            1
        );
    }
}
