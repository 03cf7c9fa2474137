//! What the store keeps for the OAuth2 authorization server: registered clients (of one
//! tenant), authorization codes, and access and refresh tokens. Secrets, codes and tokens
//! are kept only as keyed hashes (HMAC-SHA-256, `Vault::blind_index`), never as they are.

use thingsafe_core::oauth2::{GrantType, Scopes};
use thingsafe_core::{TenantId, TimestampMs, UserId};

/// A client to register; `secret: None` makes a public client (it must use PKCE).
#[derive(Clone, Debug)]
pub struct NewOAuthClient {
    pub name: String,
    pub secret: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Scopes,
    /// The administrator registering it: client-credentials tokens act with their rights.
    pub owner: UserId,
}

/// A registered client, as the protocol endpoints and its tenant's admins see it.
#[derive(Clone, Debug, PartialEq)]
pub struct OAuthClient {
    pub id: String,
    pub tenant: TenantId,
    pub owner: UserId,
    pub name: String,
    /// Has a secret (a confidential client); else public.
    pub confidential: bool,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Scopes,
    pub created_ms: TimestampMs,
}

/// An authorization code to store (single use, short-lived).
#[derive(Clone, Debug)]
pub struct NewOAuthCode {
    pub code: String,
    pub client_id: String,
    pub user: UserId,
    pub redirect_uri: String,
    pub scopes: Scopes,
    pub code_challenge: String,
    pub expires_ms: TimestampMs,
}

/// What a redeemed code was issued for.
#[derive(Clone, Debug, PartialEq)]
pub struct OAuthCode {
    pub client_id: String,
    pub user: UserId,
    pub redirect_uri: String,
    pub scopes: Scopes,
    pub code_challenge: String,
    /// The grant the tokens issued for this code belong to.
    pub family: String,
}

/// The outcome of presenting a code at the token endpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum CodeRedemption {
    /// First use, in time: now spent.
    Redeemed(OAuthCode),
    /// Unknown, expired, or issued to another client.
    Invalid,
    /// Used before: the tokens issued for it are revoked (RFC 6749 §4.1.2).
    Reused,
}

/// Tokens to store for one grant (`family`): every token of a family is revoked together.
#[derive(Clone, Debug)]
pub struct TokenIssue {
    pub family: String,
    pub client_id: String,
    /// The person the tokens act for; for client credentials, the client's owner.
    pub user: UserId,
    pub grant: GrantType,
    pub scopes: Scopes,
    pub access_token: String,
    pub access_expires_ms: TimestampMs,
    pub refresh_token: Option<(String, TimestampMs)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// A live (unrevoked, unexpired, for refresh tokens unused) token.
#[derive(Clone, Debug, PartialEq)]
pub struct OAuthToken {
    pub kind: TokenKind,
    pub client_id: String,
    pub user: UserId,
    pub grant: GrantType,
    pub scopes: Scopes,
    pub issued_ms: TimestampMs,
    pub expires_ms: TimestampMs,
}

/// The outcome of presenting a refresh token.
#[derive(Clone, Debug, PartialEq)]
pub enum RefreshRotation {
    /// The old token is spent; the new ones are stored with its family and these scopes.
    Rotated { user: UserId, scopes: Scopes },
    /// Unknown, expired, revoked, or of another client.
    Invalid,
    /// Used before: the whole family is revoked now.
    Reused,
    /// Asked for scopes beyond the grant's.
    ScopeTooWide { granted: Scopes },
}

/// An application holding a grant to a person's data (the privacy center's list).
#[derive(Clone, Debug, PartialEq)]
pub struct OAuthGrant {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Scopes,
    /// When the oldest live token of the grant was issued.
    pub since_ms: TimestampMs,
}
