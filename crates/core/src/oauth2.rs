//! OAuth2's rules (RFC 6749, PKCE RFC 7636), apart from HTTP and storage: scopes and what
//! each role may hold, grant types, the PKCE S256 check, what a registered client may
//! declare, and the error codes the endpoints answer with.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::Authority;

/// What an access token may be used for: each API route needs one (or is closed to
/// OAuth2 tokens: account, user and customer management stay with signed-in people).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiScope {
    DevicesRead,
    DevicesWrite,
    TelemetryRead,
    TelemetryWrite,
    Rpc,
    PrivacySelf,
}

impl ApiScope {
    pub const ALL: [ApiScope; 6] = [
        ApiScope::DevicesRead,
        ApiScope::DevicesWrite,
        ApiScope::TelemetryRead,
        ApiScope::TelemetryWrite,
        ApiScope::Rpc,
        ApiScope::PrivacySelf,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ApiScope::DevicesRead => "devices:read",
            ApiScope::DevicesWrite => "devices:write",
            ApiScope::TelemetryRead => "telemetry:read",
            ApiScope::TelemetryWrite => "telemetry:write",
            ApiScope::Rpc => "rpc",
            ApiScope::PrivacySelf => "privacy:self",
        }
    }

    pub fn parse(s: &str) -> Option<ApiScope> {
        ApiScope::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What the consent screen says the application may do.
    pub fn describe(&self) -> &'static str {
        match self {
            ApiScope::DevicesRead => "See your devices and their details",
            ApiScope::DevicesWrite => "Create, change, assign and delete devices",
            ApiScope::TelemetryRead => "Read your devices' telemetry and attributes",
            ApiScope::TelemetryWrite => "Change attributes and delete telemetry",
            ApiScope::Rpc => "Send commands (RPC) to your devices",
            ApiScope::PrivacySelf => "See your profile, consents and personal data export",
        }
    }

    /// Whether a person of `role` can do what this scope allows at all: a token never
    /// holds more than its user has.
    pub fn allowed_for(&self, role: Authority) -> bool {
        match role {
            Authority::SysAdmin => *self == ApiScope::PrivacySelf,
            Authority::TenantAdmin => true,
            Authority::CustomerUser => *self != ApiScope::DevicesWrite,
        }
    }
}

impl fmt::Display for ApiScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, written space-separated (RFC 6749 §3.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<ApiScope>);

impl Scopes {
    /// Parses a `scope` parameter; an unknown scope is named in the error.
    pub fn parse(raw: &str) -> Result<Scopes, String> {
        let mut set = BTreeSet::new();
        for word in raw.split(' ').filter(|w| !w.is_empty()) {
            let scope = ApiScope::parse(word).ok_or_else(|| {
                format!(
                    "unknown scope {word:?}: the scopes are {}",
                    Scopes(ApiScope::ALL.into_iter().collect())
                )
            })?;
            set.insert(scope);
        }
        Ok(Scopes(set))
    }

    pub fn all() -> Scopes {
        Scopes(ApiScope::ALL.into_iter().collect())
    }

    pub fn contains(&self, scope: ApiScope) -> bool {
        self.0.contains(&scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, of: &Scopes) -> bool {
        self.0.is_subset(&of.0)
    }

    pub fn without(&self, scope: ApiScope) -> Scopes {
        Scopes(self.0.iter().copied().filter(|s| *s != scope).collect())
    }

    pub fn intersect(&self, other: &Scopes) -> Scopes {
        Scopes(self.0.intersection(&other.0).copied().collect())
    }

    /// The scopes a person of `role` can hold.
    pub fn for_role(&self, role: Authority) -> Scopes {
        Scopes(
            self.0
                .iter()
                .copied()
                .filter(|s| s.allowed_for(role))
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = ApiScope> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = self.0.iter().map(|s| s.as_str()).collect();
        f.write_str(&words.join(" "))
    }
}

/// The grants this server issues tokens for: no implicit grant, no password grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
        }
    }

    pub fn parse(s: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// RFC 6749 §5.2 and §4.1.2.1 error codes (and RFC 6750's `insufficient_scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    InsufficientScope,
    InvalidToken,
}

impl ErrorCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InvalidToken => "invalid_token",
        }
    }
}

/// A refusal: the code and a description that says what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
        }
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks an authorization request's `code_challenge`: only S256 is accepted.
pub fn check_code_challenge(challenge: &str, method: Option<&str>) -> Result<(), OAuthError> {
    match method {
        Some("S256") => {}
        Some(other) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                format!("code_challenge_method {other:?} is not supported: use S256"),
            ));
        }
        None => {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                "code_challenge_method is required and must be S256 (plain is not accepted)",
            ));
        }
    }
    if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "code_challenge must be the base64url (no padding) SHA-256 of the verifier: 43 characters",
        ));
    }
    Ok(())
}

/// The S256 challenge of a verifier: BASE64URL(SHA256(verifier)).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Checks the token request's `code_verifier` against the challenge the code was issued
/// for (RFC 7636 §4.6). A wrong or missing verifier is `invalid_grant`.
pub fn verify_pkce(challenge: &str, verifier: Option<&str>) -> Result<(), OAuthError> {
    let Some(verifier) = verifier else {
        return Err(OAuthError::new(
            ErrorCode::InvalidGrant,
            "code_verifier is required: the code was issued for a PKCE challenge",
        ));
    };
    if !is_pkce_value(verifier) {
        return Err(OAuthError::new(
            ErrorCode::InvalidGrant,
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
        ));
    }
    let expected = s256_challenge(verifier);
    // Both are public-length strings; compare without an early exit anyway.
    let same = expected.len() == challenge.len()
        && expected
            .bytes()
            .zip(challenge.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::InvalidGrant,
            "code_verifier does not match the code_challenge of the authorization request",
        ))
    }
}

/// A redirect URI a client may register (RFC 6749 §3.1.2, RFC 8252 §7): absolute, no
/// fragment; https, or http only to the loopback host, or an app's private scheme.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > 2000 {
        return Err("a redirect URI is longer than 2000 characters".into());
    }
    if uri.contains('#') {
        return Err(format!(
            "redirect URI {uri:?} has a fragment: RFC 6749 §3.1.2 forbids one"
        ));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("redirect URI {uri:?} contains whitespace"));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(format!(
            "redirect URI {uri:?} is not absolute: it needs a scheme such as https://"
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    let valid_scheme = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(format!("redirect URI {uri:?} has no valid scheme"));
    }
    match scheme.as_str() {
        "https" => host_of(rest)
            .map(|_| ())
            .ok_or_else(|| format!("redirect URI {uri:?} has no host")),
        "http" => match host_of(rest) {
            Some("127.0.0.1" | "localhost" | "[::1]") => Ok(()),
            _ => Err(format!(
                "redirect URI {uri:?} uses http to a host other than the loopback: use https"
            )),
        },
        "javascript" | "data" | "file" | "vbscript" => Err(format!(
            "redirect URI {uri:?} uses the {scheme}: scheme, which cannot receive a code"
        )),
        _ if scheme.contains('.') => Ok(()),
        _ => Err(format!(
            "redirect URI {uri:?}: a private-use scheme must be a reversed domain name (com.example.app:/callback)"
        )),
    }
}

/// The host of `//host[:port]/...`, without the port.
fn host_of(after_scheme: &str) -> Option<&str> {
    let authority = after_scheme.strip_prefix("//")?.split(['/', '?']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = if host.starts_with('[') {
        host.split_inclusive(']').next()?
    } else {
        host.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// The scopes an access token gets: those asked for (all the client may have when none
/// are asked), within the client's, within what the user's role allows. Asking for a
/// scope the client was not registered with is `invalid_scope`.
pub fn granted_scopes(
    requested: Option<&str>,
    client: &Scopes,
    role: Authority,
) -> Result<Scopes, OAuthError> {
    let requested = match requested {
        Some(raw) if !raw.trim().is_empty() => {
            Scopes::parse(raw).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e))?
        }
        _ => client.clone(),
    };
    if !requested.is_subset(client) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!(
                "the client may ask only for the scopes it was registered with: {client}; it asked for {requested}"
            ),
        ));
    }
    let granted = requested.for_role(role);
    if granted.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!(
                "none of the scopes asked for ({requested}) can be held by a {} account",
                role.as_str()
            ),
        ));
    }
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn pkce_s256_matches_the_rfc_example_and_refuses_anything_else() {
        assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
        assert!(verify_pkce(CHALLENGE, Some(VERIFIER)).is_ok());
        let wrong = verify_pkce(CHALLENGE, Some(&VERIFIER.replace('d', "e"))).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::InvalidGrant);
        assert_eq!(
            verify_pkce(CHALLENGE, None).unwrap_err().code,
            ErrorCode::InvalidGrant
        );
        // The challenge itself used as the verifier (a "plain" downgrade) fails.
        assert!(verify_pkce(CHALLENGE, Some(CHALLENGE)).is_err());
        for bad in ["short", &"a".repeat(129), &format!("{VERIFIER} ")] {
            assert!(verify_pkce(CHALLENGE, Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_s256_challenges_are_accepted() {
        assert!(check_code_challenge(CHALLENGE, Some("S256")).is_ok());
        for (challenge, method) in [
            (CHALLENGE, Some("plain")),
            (CHALLENGE, None),
            ("tooshort", Some("S256")),
            (&format!("{}!", &CHALLENGE[..42]) as &str, Some("S256")),
        ] {
            let e = check_code_challenge(challenge, method).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{challenge} {method:?}");
        }
    }

    #[test]
    fn scopes_parse_and_name_what_is_unknown() {
        let s = Scopes::parse("telemetry:read  devices:read").unwrap();
        assert_eq!(s.to_string(), "devices:read telemetry:read");
        assert!(Scopes::parse("").unwrap().is_empty());
        let e = Scopes::parse("devices:read admin").unwrap_err();
        assert!(
            e.contains("\"admin\"") && e.contains("telemetry:read"),
            "{e}"
        );
        assert!(Scopes::parse("DEVICES:READ").is_err());
    }

    #[test]
    fn a_token_never_holds_more_than_its_client_or_its_user() {
        let client = Scopes::parse("devices:read devices:write telemetry:read").unwrap();
        let all = granted_scopes(None, &client, Authority::TenantAdmin).unwrap();
        assert_eq!(all, client);
        let customer = granted_scopes(None, &client, Authority::CustomerUser).unwrap();
        assert_eq!(customer.to_string(), "devices:read telemetry:read");
        let narrowed =
            granted_scopes(Some("telemetry:read"), &client, Authority::TenantAdmin).unwrap();
        assert_eq!(narrowed.to_string(), "telemetry:read");
        let wider = granted_scopes(Some("rpc"), &client, Authority::TenantAdmin).unwrap_err();
        assert_eq!(wider.code, ErrorCode::InvalidScope);
        let unknown = granted_scopes(Some("root"), &client, Authority::TenantAdmin).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::InvalidScope);
        let nothing =
            granted_scopes(Some("devices:write"), &client, Authority::CustomerUser).unwrap_err();
        assert_eq!(nothing.code, ErrorCode::InvalidScope);
        let sys = granted_scopes(None, &Scopes::all(), Authority::SysAdmin).unwrap();
        assert_eq!(sys.to_string(), "privacy:self");
    }

    #[test]
    fn redirect_uris_must_be_able_to_receive_a_code_safely() {
        for good in [
            "https://app.example/callback",
            "https://app.example:8443/cb?x=1",
            "http://127.0.0.1:8123/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(check_redirect_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "/relative",
            "app.example/cb",
            "http://app.example/cb",
            "http://localhost.evil.example/cb",
            "https://app.example/cb#frag",
            "javascript:alert(1)",
            "myapp:/cb",
            "https:///nohost",
            "https://app.example/c b",
            "",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grant_types_are_the_three_we_issue() {
        assert_eq!(
            GrantType::parse("authorization_code"),
            Some(GrantType::AuthorizationCode)
        );
        assert_eq!(GrantType::parse("password"), None);
        assert_eq!(GrantType::parse("implicit"), None);
    }
}
