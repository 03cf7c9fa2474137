use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// 200 when the store answers a query.
pub(super) async fn healthz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(axum::Json(json!({ "status": "UP" }))),
        Err(e) => {
            tracing::error!(error = %e, "health check: store does not answer");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                crate::error::ErrorCode::General,
                format!("store does not answer: {e}"),
            ))
        }
    }
}

/// Prometheus text exposition.
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Recent backup runs (scheduled by `thingsafe serve`), newest first: system administrator
/// only.
pub(super) async fn backups(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<serde_json::Value>> {
    principal.require(&[thingsafe_core::Authority::SysAdmin])?;
    let runs = state.store.backup_runs(200).await?;
    Ok(axum::Json(serde_json::Value::Array(
        runs.into_iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "kind": r.kind,
                    "attempt": r.attempt,
                    "status": r.status,
                    "startedTs": r.started_ms,
                    "finishedTs": r.finished_ms,
                    "durationMs": r.finished_ms.map(|f| f - r.started_ms),
                    "bytes": r.bytes,
                    "file": r.file,
                    "error": r.error,
                })
            })
            .collect(),
    )))
}
