use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

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
