pub(crate) mod accounts;
mod customers;
mod device_api;
mod devices;
pub(crate) mod password_reset;
mod privacy;
mod privacy_records;
mod privacy_requests;
mod privacy_rights;
mod provisioning;
mod rpc;
mod suspensions;
mod system;
mod telemetry;
mod tenant_exports;

use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::error::ApiError;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        // Without a token.
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics))
        .route("/api/auth/login", post(accounts::login))
        .route("/api/auth/token", post(accounts::refresh))
        .route("/api/noauth/signup", post(accounts::sign_up))
        .route("/api/noauth/setup", post(accounts::setup))
        .route("/api/noauth/activate", post(accounts::activate))
        .route(
            "/api/auth/2fa/verification/check",
            post(crate::two_factor::check),
        )
        .route(
            "/api/2fa/account/settings",
            get(crate::two_factor::account_settings),
        )
        .route(
            "/api/2fa/account/config/generate",
            post(crate::two_factor::generate),
        )
        .route(
            "/api/2fa/account/config",
            post(crate::two_factor::enable).delete(crate::two_factor::disable),
        )
        .route(
            "/api/noauth/resetPasswordByEmail",
            post(password_reset::reset_by_email),
        )
        .route(
            "/api/noauth/resetPassword",
            post(password_reset::reset_password),
        )
        .route("/privacy", get(privacy::page))
        .route("/.well-known/gpc.json", get(privacy_rights::gpc))
        .route(
            "/api/privacy/cookies",
            get(privacy_rights::cookies).post(privacy_rights::choose_cookies),
        )
        .route(
            "/api/privacy/unsubscribe",
            get(privacy_rights::unsubscribe).post(privacy_rights::unsubscribe),
        )
        .route(
            "/api/privacy/me",
            delete(privacy_rights::erase_me).patch(privacy_requests::rectify),
        )
        .route(
            "/api/privacy/me/restriction",
            post(privacy_requests::restrict_me),
        )
        .route(
            "/api/privacy/me/recipients",
            get(privacy_requests::my_recipients),
        )
        .route("/api/privacy/me/requests", get(privacy_requests::mine))
        .route(
            "/api/privacy/requests",
            get(privacy_requests::queue).post(privacy_requests::create),
        )
        .route(
            "/api/privacy/requests/public",
            post(privacy_requests::create_public),
        )
        .route("/api/privacy/requests/{id}", get(privacy_requests::get))
        .route(
            "/api/privacy/requests/{id}/verify",
            post(privacy_requests::verify),
        )
        .route(
            "/api/privacy/requests/{id}/assign",
            post(privacy_requests::assign),
        )
        .route(
            "/api/privacy/requests/{id}/extend",
            post(privacy_requests::extend),
        )
        .route(
            "/api/privacy/requests/{id}/complete",
            post(privacy_requests::complete),
        )
        .route(
            "/api/privacy/requests/{id}/reject",
            post(privacy_requests::reject),
        )
        .route(
            "/api/privacy/requests/{id}/lift",
            post(privacy_requests::lift),
        )
        .route(
            "/api/privacy/me/consents",
            get(privacy_rights::my_consents).put(privacy_rights::change_my_consents),
        )
        .route("/api/privacy/me/export", get(privacy_rights::export))
        .route(
            "/api/privacy/tenant/export",
            get(tenant_exports::export_now),
        )
        .route("/api/privacy/tenant/exports", get(tenant_exports::exports))
        .route("/api/suspensions", get(suspensions::list))
        .route(
            "/api/device/{id}/suspension",
            post(suspensions::suspend_device).delete(suspensions::lift_device),
        )
        .route(
            "/api/deviceType/{type}/suspension",
            post(suspensions::suspend_type).delete(suspensions::lift_type),
        )
        .route(
            "/api/tenant/{id}/suspension",
            post(suspensions::suspend_tenant).delete(suspensions::lift_tenant),
        )
        .route(
            "/api/privacy/tenant/exports/schedule",
            axum::routing::put(tenant_exports::set_schedule),
        )
        .route(
            "/api/privacy/tenant/exports/{id}",
            get(tenant_exports::download),
        )
        .route(
            "/api/privacy/retention",
            get(privacy_rights::get_retention).put(privacy_rights::set_retention),
        )
        .route(
            "/api/privacy/retention/sweep",
            post(privacy_rights::sweep_now),
        )
        .route("/api/privacy/audit", get(privacy_records::audit))
        .route(
            "/api/privacy/audit/verify",
            get(privacy_records::verify_audit),
        )
        .route(
            "/api/privacy/disclosures",
            get(privacy_records::disclosures).post(privacy_records::record_disclosure),
        )
        .route(
            "/api/privacy/me/disclosures",
            get(privacy_records::my_disclosures),
        )
        .route(
            "/api/privacy/breaches",
            get(privacy_records::list_breaches).post(privacy_records::record_breach),
        )
        .route(
            "/api/privacy/breaches/{id}/notified",
            post(privacy_records::authority_notified),
        )
        .route(
            "/api/privacy/breaches/{id}/subjects",
            get(privacy_records::breach_subjects),
        )
        .route(
            "/api/privacy/breaches/{id}/subjects/notify",
            post(privacy_records::notify_breach_subjects),
        )
        .route("/api/privacy/ropa", get(privacy_records::ropa))
        .route("/api/privacy/datamap", get(privacy_records::datamap))
        .route(
            "/api/privacy/classification",
            get(privacy_records::get_classification)
                .merge(put(privacy_records::set_classification)),
        )
        .route("/api/privacy/policy", get(privacy::current))
        .route(
            "/api/privacy/me/policy-review",
            get(privacy::my_review).post(privacy::accept),
        )
        .route("/api/privacy/policy/versions", get(privacy::versions))
        .route(
            "/api/privacy/policy/versions/{version}",
            get(privacy::version),
        )
        // Signed in.
        .route("/api/auth/logout", post(accounts::logout))
        .route("/api/auth/user", get(accounts::current_user))
        .route("/api/tenants", get(accounts::tenants))
        .route("/api/admin/backups", get(system::backups))
        .route("/api/admin/statistics", get(privacy_records::statistics))
        .route("/api/user", post(accounts::create_user))
        .route("/api/users", get(accounts::users))
        .route(
            "/api/user/{id}",
            get(accounts::user).delete(accounts::delete_user),
        )
        .route(
            "/api/user/{id}/activationLink",
            get(accounts::activation_link),
        )
        .route("/api/customer", post(customers::create))
        .route("/api/customers", get(customers::list))
        .route(
            "/api/customer/{id}",
            get(customers::get).delete(customers::delete),
        )
        .route("/api/customer/{id}/users", get(accounts::customer_users))
        .route("/api/customer/{id}/devices", get(devices::customer_devices))
        .route(
            "/api/customer/{customer}/device/{device}",
            post(devices::assign),
        )
        .route("/api/customer/device/{device}", delete(devices::unassign))
        .route("/api/device", post(provisioning::create_device))
        .route("/api/deviceProfile", post(provisioning::create_profile))
        .route(
            "/api/deviceProfile/{id}",
            get(provisioning::get_profile).delete(provisioning::delete_profile),
        )
        .route("/api/deviceProfiles", get(provisioning::list_profiles))
        .route(
            "/api/customer/device/{name}/claim",
            post(provisioning::claim).delete(provisioning::reclaim),
        )
        .route("/api/v1/provision", post(provisioning::provision))
        .route("/api/v1/{token}/claim", post(provisioning::device_claim))
        .route("/api/device/credentials", post(devices::set_credentials))
        .route(
            "/api/device/{id}",
            get(devices::get).delete(devices::delete),
        )
        .route("/api/device/{id}/credentials", get(devices::credentials))
        .route("/api/tenant/devices", get(devices::tenant_devices))
        // Device data for signed-in users.
        .route(
            "/api/plugins/telemetry/{entity_type}/{id}/keys/timeseries",
            get(telemetry::timeseries_keys),
        )
        .route(
            "/api/plugins/telemetry/{entity_type}/{id}/values/timeseries",
            get(telemetry::timeseries),
        )
        .route(
            "/api/plugins/telemetry/{entity_type}/{id}/timeseries/delete",
            delete(telemetry::delete_timeseries),
        )
        .route(
            "/api/plugins/telemetry/{entity_type}/{id}/values/attributes",
            get(telemetry::attribute_values),
        )
        .route(
            "/api/plugins/telemetry/{entity_type}/{id}/values/attributes/{scope}",
            get(telemetry::attribute_values),
        )
        .route(
            "/api/plugins/telemetry/{entity_type}/{id}/keys/attributes",
            get(telemetry::attribute_keys),
        )
        .route(
            "/api/plugins/telemetry/{entity_type}/{id}/keys/attributes/{scope}",
            get(telemetry::attribute_keys),
        )
        .route(
            "/api/plugins/telemetry/{entity_type}/{id}/attributes/{scope}",
            post(telemetry::save_attributes),
        )
        .route(
            "/api/plugins/telemetry/{entity_type}/{id}/{scope}",
            delete(telemetry::delete_attributes).post(telemetry::save_attributes),
        )
        .route("/api/ws", get(crate::ws::upgrade))
        .route("/api/ws/plugins/telemetry", get(crate::ws::upgrade))
        // ThingsBoard's device API: the token in the path is the device's identity.
        .route(
            "/api/v1/{token}/telemetry",
            post(device_api::post_telemetry),
        )
        .route(
            "/api/v1/{token}/attributes",
            post(device_api::post_attributes).get(device_api::get_attributes),
        )
        .route(
            "/api/v1/{token}/attributes/updates",
            get(rpc::attribute_updates),
        )
        .route(
            "/api/v1/{token}/rpc",
            get(rpc::device_poll).post(rpc::device_call),
        )
        .route("/api/v1/{token}/rpc/{id}", post(rpc::device_reply))
        .route("/api/rpc/oneway/{device}", post(rpc::oneway))
        .route("/api/rpc/twoway/{device}", post(rpc::twoway))
        .route(
            "/api/rpc/persistent/{rpc}",
            get(rpc::persistent_get).delete(rpc::persistent_delete),
        )
        .route(
            "/api/rpc/persistent/device/{device}",
            get(rpc::persistent_by_device),
        )
        .merge(crate::console::router())
        .merge(crate::oauth2::router())
        .layer(DefaultBodyLimit::max(device_api::MAX_PAYLOAD_BYTES))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::console::renew_expired_session,
        ))
        .layer(middleware::from_fn_with_state(
            crate::limits::Limiters::new(state.settings.limits),
            crate::limits::limit,
        ))
        .layer(middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "No route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    let mut e = ApiError::bad_request(format!(
        "{} is not supported on {}",
        request.method(),
        request.uri().path()
    ));
    e.status = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    e
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("thingsafe_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("thingsafe_http_request_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
