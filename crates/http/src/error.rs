//! Errors as ThingsBoard's clients expect them: `{status, message, errorCode, timestamp}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use thingsafe_core::validate::Invalid;
use thingsafe_store::StoreError;

/// ThingsBoard's `ThingsboardErrorCode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    General = 2,
    Authentication = 10,
    JwtTokenExpired = 11,
    PermissionDenied = 20,
    InvalidArguments = 30,
    BadRequestParams = 31,
    ItemNotFound = 32,
    TooManyRequests = 33,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// The request field the error is about, when it is about one (the console shows the
    /// message next to that field); not part of the JSON body.
    pub field: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// The same error, about `field`.
    pub fn on_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequestParams,
            message,
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Authentication, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::PermissionDenied, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::ItemNotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::General,
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": self.status.as_u16(),
            "message": self.message,
            "errorCode": self.code as u16,
            "timestamp": thingsafe_core::now_ms(),
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => {
                ApiError::not_found(format!("Requested item wasn't found: no such {what}"))
            }
            StoreError::Conflict(m) | StoreError::Invalid(m) => ApiError::bad_request(m),
            StoreError::Forbidden(m) => ApiError::forbidden(m),
            StoreError::Full(m) => {
                tracing::error!(error = %m, "storage full: a write was refused");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    ErrorCode::General,
                    "The server's storage is full: nothing was stored. Try again later",
                )
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal("The server could not complete the request; the error is logged")
            }
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidArguments,
            e.to_string(),
        )
        .on_field(e.field)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
