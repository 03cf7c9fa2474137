//! Accountability records: the audit log and its verification (`/api/privacy/audit*`),
//! disclosures (`/api/privacy/disclosures`, `/api/privacy/me/disclosures`), the breach
//! register (`/api/privacy/breaches*`), the records of processing and the data map
//! (`/api/privacy/ropa`, `/api/privacy/datamap`) and the classification of telemetry keys
//! (`/api/privacy/classification`). The rules are the privacy engine's.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use thingsafe_core::{Authority, TimestampMs, now_ms};
use thingsafe_privacy::audit::{Audit, action};
use thingsafe_privacy::{breaches, classification, disclosures, ropa};
use thingsafe_store::records::{AuditFilter, Breach, Disclosure, NewBreach};

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, parse_id};

const ADMINS: &[Authority] = &[Authority::SysAdmin, Authority::TenantAdmin];

/// A time given as ms since the epoch or as RFC 3339; `what` names it in the error.
fn parse_time(what: &str, raw: &str) -> ApiResult<TimestampMs> {
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(ms);
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{what} {raw:?} is not a time: give milliseconds since 1970 or RFC 3339 (2026-11-23T10:00:00Z)"
            ))
        })
}

fn parse_opt_time(what: &str, raw: Option<&str>) -> ApiResult<Option<TimestampMs>> {
    raw.filter(|r| !r.is_empty())
        .map(|r| parse_time(what, r))
        .transpose()
}

// --- audit log ----------------------------------------------------------------------------

/// Most events one request returns.
const MAX_AUDIT_EVENTS: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    from: Option<String>,
    to: Option<String>,
    action: Option<String>,
    actor: Option<String>,
    limit: Option<usize>,
}

/// The audit log: a tenant administrator's own tenant, everything for the system
/// administrator.
pub(super) async fn audit(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(ADMINS)?;
    let filter = AuditFilter {
        from_ms: parse_opt_time("from", q.from.as_deref())?,
        to_ms: parse_opt_time("to", q.to.as_deref())?,
        action: q.action.filter(|a| !a.is_empty()),
        actor: q
            .actor
            .filter(|a| !a.is_empty())
            .map(|a| parse_id("actor", &a))
            .transpose()?,
        limit: q.limit.unwrap_or(1000).min(MAX_AUDIT_EVENTS),
    };
    let events = state
        .store
        .audit_events(&principal.scope(), &filter)
        .await?;
    Ok(axum::Json(json!({ "events": events })))
}

/// Walks the whole chain and names the first broken link.
pub(super) async fn verify_audit(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    principal.require(ADMINS)?;
    let verification = thingsafe_privacy::audit::verify(state.store.as_ref()).await?;
    if let Some(broken) = &verification.broken {
        tracing::error!(seq = broken.seq, reason = %broken.reason, "the audit log's chain is broken");
    }
    Ok(axum::Json(json!(verification)))
}

// --- anonymised statistics ------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatisticsQuery {
    key: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The hourly aggregates kept of expired telemetry (`aggregate = "hourly"` in the policy):
/// they name no device, owner or tenant, so only the system administrator reads them, for
/// the whole installation.
pub(super) async fn statistics(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<StatisticsQuery>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::SysAdmin])?;
    let key = q
        .key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::bad_request("key is required: the telemetry key to read"))?;
    let from = parse_opt_time("from", q.from.as_deref())?.unwrap_or(0);
    let to = parse_opt_time("to", q.to.as_deref())?.unwrap_or_else(now_ms);
    if from > to {
        return Err(ApiError::bad_request(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    let hours = state.store.telemetry_aggregates(&key, from, to).await?;
    Ok(axum::Json(json!({ "key": key, "hours": hours })))
}

// --- disclosures ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct YearQuery {
    year: Option<i32>,
}

/// The yearly list of recipients and the categories each received ("Shine the Light").
pub(super) async fn disclosures(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<YearQuery>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(ADMINS)?;
    let year = q
        .year
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().year());
    let recipients = disclosures::yearly_report(
        state.store.as_ref(),
        &principal.scope(),
        &state.policy.policy,
        year,
    )
    .await?;
    Ok(axum::Json(
        json!({ "year": year, "recipients": recipients }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DisclosureReport {
    subject_id: String,
    categories: Vec<String>,
    recipient: String,
    purpose: String,
    /// When it was disclosed; now if absent.
    time: Option<String>,
}

/// Records a disclosure made outside the server (a tenant administrator answering an
/// authority's request, handing data to an auditor...) of a person of their tenant.
pub(super) async fn record_disclosure(
    State(state): State<AppState>,
    principal: Principal,
    Json(report): Json<DisclosureReport>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let scope = principal.scope();
    let subject = state
        .store
        .user(&scope, parse_id("subjectId", &report.subject_id)?)
        .await?;
    let disclosure = Disclosure {
        subject: subject.id,
        tenant_id: subject.tenant_id,
        categories: report.categories,
        recipient: report.recipient,
        purpose: report.purpose,
        at_ms: parse_opt_time("time", report.time.as_deref())?.unwrap_or_else(now_ms),
    };
    let recorded =
        disclosures::record_disclosure(state.store.as_ref(), &state.policy.policy, disclosure)
            .await?;
    Ok(axum::Json(json!(recorded)))
}

/// The caller's own disclosures, and the processors that receive their data as a matter of
/// course.
pub(super) async fn my_disclosures(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(
        thingsafe_privacy::export::disclosures_of(
            state.store.as_ref(),
            &state.policy.policy,
            &principal.user,
        )
        .await?,
    ))
}

// --- breach register -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct BreachReport {
    nature: String,
    categories: Vec<String>,
    approx_subjects: u64,
    consequences: String,
    measures: String,
    detected_at: String,
    /// The system administrator may record a breach of one tenant; none: the installation.
    tenant_id: Option<String>,
}

/// The audit event of a change to `breach` by the caller.
fn breach_audit(action: &str, principal: &Principal, breach: &Breach, details: Value) -> Audit {
    Audit::new(action)
        .by(&principal.user)
        .tenant(breach.tenant_id)
        .target("breach", breach.id)
        .details(details)
}

/// The breach `id` as the caller's scope reaches it (another tenant's is not found).
async fn find_breach(state: &AppState, principal: &Principal, id: &str) -> ApiResult<Breach> {
    principal.require(ADMINS)?;
    Ok(state
        .store
        .breach(&principal.scope(), parse_id("breach", id)?)
        .await?)
}

pub(super) async fn record_breach(
    State(state): State<AppState>,
    principal: Principal,
    Json(report): Json<BreachReport>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(ADMINS)?;
    let tenant = match (principal.user.authority, report.tenant_id.as_deref()) {
        (Authority::SysAdmin, Some(t)) => Some(parse_id("tenantId", t)?),
        (Authority::SysAdmin, None) => None,
        (_, None) => Some(principal.scope().tenant()?),
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "\"tenantId\" is for the system administrator: a tenant administrator records breaches of their own tenant",
            ));
        }
    };
    let now = now_ms();
    let breach = NewBreach {
        tenant,
        nature: report.nature,
        categories: report.categories,
        approx_subjects: report.approx_subjects,
        consequences: report.consequences,
        measures: report.measures,
        detected_ms: parse_time("detectedAt", &report.detected_at)?,
        recorded_by: Some(principal.user.id),
    };
    breaches::check(&state.policy.policy, &breach, now).map_err(ApiError::bad_request)?;
    let breach = state
        .store
        .record_breach(&principal.scope(), breach)
        .await?;
    let details =
        json!({"categories": breach.categories, "approxSubjects": breach.approx_subjects});
    breach_audit(action::BREACH_RECORD, &principal, &breach, details)
        .record(state.store.as_ref())
        .await;
    Ok(axum::Json(breaches::view(&breach, now)))
}

pub(super) async fn list_breaches(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    principal.require(ADMINS)?;
    let now = now_ms();
    let list: Vec<Value> = state
        .store
        .breaches(&principal.scope())
        .await?
        .iter()
        .map(|b| breaches::view(b, now))
        .collect();
    Ok(axum::Json(json!({ "breaches": list })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AuthorityNotified {
    notified_at: String,
    reference: Option<String>,
}

pub(super) async fn authority_notified(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<AuthorityNotified>,
) -> ApiResult<axum::Json<Value>> {
    let breach = find_breach(&state, &principal, &id).await?;
    let at = parse_time("notifiedAt", &body.notified_at)?;
    if at < breach.detected_ms {
        return Err(ApiError::bad_request(
            "\"notifiedAt\" is before the breach was detected",
        ));
    }
    let breach = state
        .store
        .breach_authority_notified(
            &principal.scope(),
            breach.id,
            at,
            body.reference.filter(|r| !r.is_empty()),
        )
        .await?;
    let details = json!({"notifiedTime": at, "reference": breach.authority_reference});
    breach_audit(
        action::BREACH_AUTHORITY_NOTIFIED,
        &principal,
        &breach,
        details,
    )
    .record(state.store.as_ref())
    .await;
    Ok(axum::Json(breaches::view(&breach, now_ms())))
}

/// The people whose data falls in the breach's categories, and who was told already.
pub(super) async fn breach_subjects(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let breach = find_breach(&state, &principal, &id).await?;
    let affected = breaches::affected_subjects(state.store.as_ref(), &breach).await?;
    let notified = state
        .store
        .breach_notifications(&principal.scope(), breach.id)
        .await?;
    Ok(axum::Json(
        json!({ "subjects": affected, "notified": notified }),
    ))
}

/// Mails every affected person not yet told their notice (GDPR Art. 34) and records the
/// notification of each one it reached; answers each notice and whether it was sent.
pub(super) async fn notify_breach_subjects(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let breach = find_breach(&state, &principal, &id).await?;
    let scope = principal.scope();
    let to_tell = breaches::not_yet_notified(state.store.as_ref(), &scope, &breach).await?;
    let mut reached = Vec::new();
    let mut notices = Vec::new();
    for subject in &to_tell {
        let notice = breaches::notice(&breach, &state.policy.policy, subject);
        let sent = state
            .mailer
            .send(&subject.email, breaches::NOTICE_SUBJECT, &notice)
            .await;
        if let Err(e) = &sent {
            tracing::error!(error = %e, "a breach notice was not sent; the person is not recorded as told");
        } else {
            reached.push(subject.user_id);
        }
        notices.push(json!({
            "userId": subject.user_id,
            "categories": subject.categories,
            "notice": notice,
            "mailed": sent.is_ok(),
            "error": sent.err().map(|e| e.to_string()),
        }));
    }
    if !reached.is_empty() {
        state
            .store
            .record_breach_notifications(&scope, breach.id, reached.clone(), now_ms())
            .await?;
        breach_audit(
            action::BREACH_SUBJECTS_NOTIFIED,
            &principal,
            &breach,
            json!({"subjects": reached.len(), "by": "mail"}),
        )
        .record(state.store.as_ref())
        .await;
    }
    let notified = state.store.breach_notifications(&scope, breach.id).await?;
    Ok(axum::Json(
        json!({ "notices": notices, "notified": notified }),
    ))
}

// --- records of processing and data map ----------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FormatQuery {
    format: Option<String>,
}

/// GDPR Art. 30(1) records of processing, as JSON or (`?format=csv`) CSV.
pub(super) async fn ropa(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<FormatQuery>,
) -> ApiResult<Response> {
    principal.require(ADMINS)?;
    match q.format.as_deref() {
        None | Some("json") => Ok(axum::Json(ropa::records(&state.policy)).into_response()),
        Some("csv") => Ok((
            [
                (CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    CONTENT_DISPOSITION,
                    "attachment; filename=\"records-of-processing.csv\"",
                ),
                (CACHE_CONTROL, "no-store"),
            ],
            ropa::records_csv(&state.policy),
        )
            .into_response()),
        Some(other) => Err(ApiError::bad_request(format!(
            "format {other:?} is not offered: use json or csv"
        ))),
    }
}

/// The fideslang data map (YAML) Fides reads.
pub(super) async fn datamap(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Response> {
    principal.require(ADMINS)?;
    Ok((
        [
            (CONTENT_TYPE, "application/yaml; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        ropa::data_map_yaml(&state.policy),
    )
        .into_response())
}

// --- classification of telemetry keys ------------------------------------------------------

pub(super) async fn get_classification(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    let map = state
        .store
        .telemetry_classification(&principal.scope())
        .await?;
    Ok(axum::Json(json!(map)))
}

/// Replaces the tenant's classification: `{"lat": "user.location.precise", ...}`.
pub(super) async fn set_classification(
    State(state): State<AppState>,
    principal: Principal,
    Json(map): Json<BTreeMap<String, String>>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    classification::check(&state.policy.policy, &map).map_err(ApiError::bad_request)?;
    state
        .store
        .set_telemetry_classification(&principal.scope(), map.clone())
        .await?;
    Audit::new(action::CLASSIFICATION_CHANGE)
        .by(&principal.user)
        .details(json!({"keys": map.len(), "categories": map.values().collect::<std::collections::BTreeSet<_>>()}))
        .record(state.store.as_ref())
        .await;
    Ok(axum::Json(json!(map)))
}
