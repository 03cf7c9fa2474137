//! Customers: ThingsBoard's `/api/customer*`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use thingsafe_core::{Authority, CustomerId, Owner, validate};
use thingsafe_privacy::audit::{Audit, action};

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::extract::{Json, Query, parse_id};
use crate::tb::{self, EntityIdIn, PageParams};

#[derive(Deserialize)]
pub(super) struct CreateCustomer {
    id: Option<EntityIdIn>,
    title: String,
}

pub(super) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateCustomer>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let title = validate::name("title", &req.title, 255)?;
    // ThingsBoard saves: with an id the customer is updated.
    if let Some(id) = req.id {
        let customer = state
            .store
            .rename_customer(&principal.scope(), CustomerId(id.id), &title)
            .await?;
        return Ok(axum::Json(tb::customer(&customer)));
    }
    let customer = state
        .store
        .create_customer(&principal.scope(), &title)
        .await?;
    Audit::new(action::CUSTOMER_CREATE)
        .by(&principal.user)
        .target("customer", customer.id)
        .personal(
            Owner::Customer(customer.id),
            serde_json::json!({"title": customer.title}),
        )
        .record(state.store.as_ref())
        .await;
    Ok(axum::Json(tb::customer(&customer)))
}

pub(super) async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin, Authority::CustomerUser])?;
    let id: CustomerId = parse_id("customer", &id)?;
    Ok(axum::Json(tb::customer(
        &state.store.customer(&principal.scope(), id).await?,
    )))
}

pub(super) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<PageParams>,
) -> ApiResult<axum::Json<Value>> {
    principal.require(&[Authority::TenantAdmin])?;
    let page = state
        .store
        .customers(&principal.scope(), &page.request()?)
        .await?;
    Ok(axum::Json(tb::page(page, tb::customer)))
}

/// Deletes the customer and its users, and shreds their keys.
pub(super) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require(&[Authority::TenantAdmin])?;
    let id: CustomerId = parse_id("customer", &id)?;
    state.store.delete_customer(&principal.scope(), id).await?;
    Audit::new(action::CUSTOMER_DELETE)
        .by(&principal.user)
        .target("customer", id)
        .record(state.store.as_ref())
        .await;
    Ok(StatusCode::OK)
}
