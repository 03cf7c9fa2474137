//! The OAuth2 authorization server (RFC 6749): authorization code with PKCE S256, client
//! credentials, refresh tokens that rotate (a reused one revokes its grant); revocation
//! (RFC 7009), introspection (RFC 7662), metadata (RFC 8414). No implicit grant, no
//! password grant.
//!
//! The rules (scopes, PKCE, redirect URIs, grant types) are in `thingsafe_core::oauth2`;
//! storage (hashed secrets, codes and tokens, grant families) behind the `Store`.
//! - token.rs: `/oauth2/token`, `/oauth2/revoke`, `/oauth2/introspect`, the metadata.
//! - authorize.rs: `/oauth2/authorize`, the console's consent page.
//! - clients.rs: `/api/oauth2/clients` (tenant administrators register applications) and
//!   `/api/oauth2/grants` (a person's applications, for the privacy center).

mod authorize;
mod clients;
mod token;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::AppState;

pub(crate) use clients::grants_of;

/// How long an authorization code can be exchanged.
const CODE_TTL_MS: i64 = 60_000;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(token::metadata),
        )
        .route(
            "/oauth2/authorize",
            get(authorize::page).post(authorize::decide),
        )
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/revoke", post(token::revoke))
        .route("/oauth2/introspect", post(token::introspect))
        .route(
            "/api/oauth2/clients",
            post(clients::create).get(clients::list),
        )
        .route("/api/oauth2/clients/{clientId}", delete(clients::delete))
        .route("/api/oauth2/grants", get(clients::grants))
        .route(
            "/api/oauth2/grants/{clientId}",
            delete(clients::revoke_grant),
        )
}
