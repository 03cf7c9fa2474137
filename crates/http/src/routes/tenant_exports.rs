//! A tenant administrator's copy of the whole tenant: downloaded at any time
//! (`GET /api/privacy/tenant/export`), or made on a schedule they opt into and kept for
//! them (`/api/privacy/tenant/exports`), sealed with the tenant's key so that erasing the
//! tenant makes the kept files unreadable too.

use std::io::Write;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use thingsafe_core::{Authority, Owner, TenantId};
use thingsafe_privacy::tenant_export::{self, FILE_PURPOSE};
use thingsafe_store::{ExportSchedule, TenantExportSchedule};

use super::privacy_rights::{zip_download, zip_response};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;

/// How many scheduled exports are kept unless the tenant says otherwise.
const DEFAULT_KEEP: u32 = 3;

fn tenant_of(principal: &Principal) -> ApiResult<TenantId> {
    if principal.user.authority != Authority::TenantAdmin {
        return Err(ApiError::forbidden(
            "Only a tenant administrator exports the whole tenant",
        ));
    }
    Ok(principal.scope().tenant()?)
}

/// The whole tenant as a zip, streamed while it is produced.
pub(super) async fn export_now(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Response> {
    let tenant = tenant_of(&principal)?;
    thingsafe_privacy::disclosures::record_tenant_export(
        state.store.as_ref(),
        &state.policy.policy,
        &principal.user,
        "tenant-wide export",
    )
    .await?;
    let date = time::OffsetDateTime::now_utc().date();
    Ok(zip_download(
        &format!("thingsafe-tenant-{date}.zip"),
        "the tenant export",
        move |sink| async move {
            tenant_export::export_tenant(state.store.as_ref(), &state.policy, tenant, sink).await
        },
    ))
}

async fn view(state: &AppState, principal: &Principal, tenant: TenantId) -> ApiResult<Value> {
    let schedule = state
        .store
        .tenant_export_schedule(&principal.scope())
        .await?;
    let exports = state.store.tenant_exports(Some(tenant)).await?;
    Ok(json!({
        "schedule": schedule.map_or("off", |s| s.schedule.as_str()),
        "keep": schedule.map_or(DEFAULT_KEEP, |s| s.keep),
        "exports": exports.iter().map(|e| json!({
            "id": e.id,
            "startedTs": e.started_ms,
            "finishedTs": e.finished_ms,
            "status": e.status,
            "bytes": e.bytes,
            "error": e.error,
            "download": (e.status == "ok").then(|| format!("/api/privacy/tenant/exports/{}", e.id)),
        })).collect::<Vec<_>>(),
    }))
}

/// The tenant's export schedule and the exports kept for it, newest first.
pub(super) async fn exports(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_of(&principal)?;
    Ok(axum::Json(view(&state, &principal, tenant).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleChange {
    schedule: String,
    keep: Option<u32>,
}

/// Opts the tenant into scheduled exports (`daily`, `weekly`) or out (`off`).
pub(super) async fn set_schedule(
    State(state): State<AppState>,
    principal: Principal,
    Json(change): Json<ScheduleChange>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = tenant_of(&principal)?;
    let keep = change.keep.unwrap_or(DEFAULT_KEEP);
    if !(1..=30).contains(&keep) {
        return Err(ApiError::bad_request(format!(
            "keep must be between 1 and 30 exports, not {keep}"
        )));
    }
    let schedule = match change.schedule.as_str() {
        "off" => None,
        other => Some(TenantExportSchedule {
            schedule: ExportSchedule::parse(other).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "schedule must be \"daily\", \"weekly\" or \"off\", not {other:?}"
                ))
            })?,
            keep,
        }),
    };
    state
        .store
        .set_tenant_export_schedule(&principal.scope(), schedule)
        .await?;
    Ok(axum::Json(view(&state, &principal, tenant).await?))
}

/// Copies what it is given into the response body from a blocking thread.
struct BodyWriter(tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>);

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(buf.to_vec()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One kept export, opened with the tenant's key while it is sent.
pub(super) async fn download(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let tenant = tenant_of(&principal)?;
    let export = state
        .store
        .tenant_exports(Some(tenant))
        .await?
        .into_iter()
        .find(|e| e.id == id && e.status == "ok")
        .ok_or_else(|| ApiError::not_found("Requested export wasn't found!"))?;
    let path = tenant_export::file_path(&state.settings.exports_dir, tenant, &export.id);
    let file = std::fs::File::open(&path).map_err(|e| {
        tracing::error!(file = %path.display(), error = %e, "a recorded tenant export is missing");
        ApiError::not_found("Requested export wasn't found!")
    })?;
    thingsafe_privacy::disclosures::record_tenant_export(
        state.store.as_ref(),
        &state.policy.policy,
        &principal.user,
        "kept tenant-wide export",
    )
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let vault = state.vault.clone();
    tokio::task::spawn_blocking(move || {
        let failed = tx.clone();
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, BodyWriter(tx));
        let opened = vault
            .open_owned_file(Owner::Tenant(tenant), FILE_PURPOSE, file, &mut out)
            .map_err(|e| e.to_string())
            .and_then(|_| out.flush().map_err(|e| e.to_string()));
        if let Err(e) = opened {
            tracing::error!(file = %path.display(), error = %e, "a kept tenant export does not open");
            let _ = failed.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let date = time::OffsetDateTime::from_unix_timestamp(export.started_ms / 1000)
        .map(|t| t.date().to_string())
        .unwrap_or_default();
    Ok(zip_response(
        &format!("thingsafe-tenant-{date}-{}.zip", export.id),
        rx,
    ))
}
