//! The privacy policy in force, rendered from `privacy.toml`: the page people read
//! (`GET /privacy`), the same as JSON (`GET /api/privacy/policy`), its versions
//! (`GET /api/privacy/policy/versions`, `.../versions/{version}`); and the sign-up checks
//! it sets (minimum age, acceptance of the current version).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use thingsafe_core::policy::{self, Contact, Policy, PublishedPolicy};
use thingsafe_core::{TimestampMs, validate};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The page loads nothing from anywhere: no scripts, images, fonts or other sites.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(super) async fn page(State(state): State<AppState>) -> ApiResult<Response> {
    let html = PolicyPage::new(&state.policy).render().map_err(|e| {
        ApiError::internal(format!("the privacy policy page failed to render: {e}"))
    })?;
    Ok((
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, PAGE_CSP),
        ],
        html,
    )
        .into_response())
}

/// The policy in force with its version.
pub(super) async fn current(State(state): State<AppState>) -> axum::Json<Value> {
    let PublishedPolicy { policy, version } = &*state.policy;
    axum::Json(json!({
        "version": version.version,
        "publishedTime": version.published_ms,
        "material": version.material,
        "sha256": version.sha256,
        "policy": policy,
    }))
}

/// Every published version, oldest first.
pub(super) async fn versions(State(state): State<AppState>) -> ApiResult<axum::Json<Value>> {
    let versions = state.store.policy_versions().await?;
    Ok(axum::Json(json!(versions)))
}

/// One published version, as it was published.
pub(super) async fn version(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let number: u32 = raw.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Invalid policy version {raw:?}: expected a whole number such as 1"
        ))
    })?;
    let versions = state.store.policy_versions().await?;
    let found = versions.into_iter().find(|v| v.version == number);
    let (Some(version), Some(content)) = (found, state.store.policy_content(number).await?) else {
        return Err(ApiError::not_found(format!(
            "Privacy policy version {number} was never published: see /api/privacy/policy/versions"
        )));
    };
    let policy: Value = serde_json::from_str(&content)
        .map_err(|e| ApiError::internal(format!("stored policy {number} is not JSON: {e}")))?;
    Ok(axum::Json(json!({
        "version": version.version,
        "publishedTime": version.published_ms,
        "material": version.material,
        "sha256": version.sha256,
        "policy": policy,
    })))
}

// --- sign-up ---------------------------------------------------------------------------

fn policy_url(state: &AppState) -> String {
    format!(
        "{}/privacy",
        state.settings.public_url.trim_end_matches('/')
    )
}

/// Refuses someone younger than the policy's minimum age. Called before anything about
/// the person is stored.
pub(super) fn check_age(
    state: &AppState,
    birth_date: time::Date,
    today: time::Date,
) -> ApiResult<()> {
    let minimum = state.policy.policy.minimum_age;
    if validate::age_on(birth_date, today) < i32::from(minimum) {
        return Err(ApiError::forbidden(format!(
            "You must be at least {minimum} years old to create an account on this service (see the privacy policy at {}). Nothing you entered has been kept.",
            policy_url(state)
        ))
        .on_field("birthDate"));
    }
    Ok(())
}

/// The version accepted, which must be the current one.
pub(super) fn check_acceptance(state: &AppState, accepted: Option<u32>) -> ApiResult<u32> {
    let current = state.policy.version.version;
    let url = policy_url(state);
    let message = match accepted {
        Some(v) if v == current => return Ok(v),
        None => format!(
            "accepting the privacy policy is required: read version {current} at {url} and send \"acceptedPolicyVersion\": {current}"
        ),
        Some(v) => format!(
            "version {v} is not the current privacy policy: version {current} is; read it at {url} and send \"acceptedPolicyVersion\": {current}"
        ),
    };
    Err(validate::Invalid::new("acceptedPolicyVersion", message).into())
}

// --- the page --------------------------------------------------------------------------

struct UseView {
    purpose: &'static str,
    basis: &'static str,
    article: &'static str,
}

struct CategoryView {
    key: String,
    label: &'static str,
    description: String,
    source: String,
    retention: String,
    uses: Vec<UseView>,
    recipients: Vec<String>,
}

struct PurposeView {
    key: String,
    label: &'static str,
    description: String,
    categories: Vec<&'static str>,
}

struct ProcessorView {
    name: String,
    service: String,
    country: String,
    in_eea: bool,
    categories: Vec<&'static str>,
    safeguards: Option<String>,
}

struct CookieView {
    label: &'static str,
    description: &'static str,
}

#[derive(Template)]
#[template(path = "privacy.html")]
struct PolicyPage {
    version: u32,
    published: String,
    controller: Contact,
    dpo: Option<Contact>,
    minimum_age: u8,
    deadline: String,
    automated: Option<String>,
    categories: Vec<CategoryView>,
    purposes: Vec<PurposeView>,
    processors: Vec<ProcessorView>,
    cookies: Vec<CookieView>,
    only_necessary_cookies: bool,
    /// Records kept about what happened (sessions, requests, the audit log, ...): what,
    /// how long.
    records: Vec<(String, String)>,
}

/// `2026-11-23` (UTC).
fn date(ms: TimestampMs) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
        })
        .unwrap_or_default()
}

impl PolicyPage {
    fn new(published: &PublishedPolicy) -> PolicyPage {
        let p: &Policy = &published.policy;
        let categories = p
            .categories
            .iter()
            .map(|(key, c)| CategoryView {
                key: key.clone(),
                label: policy::category_label(key),
                description: c.description.clone(),
                source: c.source.clone(),
                retention: c.retention.human(),
                uses: c
                    .purposes
                    .iter()
                    .map(|(purpose, basis)| UseView {
                        purpose: policy::data_use_label(purpose),
                        basis: basis.label(),
                        article: basis.article(),
                    })
                    .collect(),
                recipients: p.recipients_of(key).map(|r| r.name.clone()).collect(),
            })
            .collect();
        let purposes = p
            .purposes
            .iter()
            .map(|(key, purpose)| PurposeView {
                key: key.clone(),
                label: policy::data_use_label(key),
                description: purpose.description.clone(),
                categories: p
                    .categories
                    .iter()
                    .filter(|(_, c)| c.purposes.contains_key(key))
                    .map(|(k, _)| policy::category_label(k))
                    .collect(),
            })
            .collect();
        let processors = p
            .processors
            .iter()
            .map(|r| ProcessorView {
                name: r.name.clone(),
                service: r.service.clone(),
                country: format!(
                    "{} ({})",
                    policy::country_name(&r.country).unwrap_or("unknown"),
                    r.country
                ),
                in_eea: policy::in_eea(&r.country),
                categories: r
                    .categories
                    .iter()
                    .map(|c| policy::category_label(c))
                    .collect(),
                safeguards: r.safeguards.clone(),
            })
            .collect();
        PolicyPage {
            version: published.version.version,
            published: date(published.version.published_ms),
            controller: p.controller.clone(),
            dpo: p.dpo.clone(),
            minimum_age: p.minimum_age,
            deadline: p.request_deadline.human(),
            records: p
                .records
                .values()
                .map(|r| (r.description.clone(), r.retention.human()))
                .collect(),
            automated: p.automated_decision_making.clone(),
            categories,
            purposes,
            processors,
            cookies: p
                .cookies
                .iter()
                .map(|c| CookieView {
                    label: c.label(),
                    description: c.description(),
                })
                .collect(),
            only_necessary_cookies: p
                .cookies
                .iter()
                .all(|c| *c == policy::CookieCategory::Necessary),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thingsafe_core::policy::PolicyVersion;

    fn published(text: &str) -> PublishedPolicy {
        PublishedPolicy {
            policy: policy::parse(text).unwrap(),
            version: PolicyVersion {
                version: 3,
                sha256: "00".repeat(32),
                published_ms: 1_795_000_000_000,
                material: true,
            },
        }
    }

    #[test]
    fn the_page_says_everything_the_policy_declares_and_escapes_it() {
        let text = format!(
            "{}\n[[processors]]\nname = \"Mail <b>Co</b>\"\nservice = \"Sends our emails.\"\ncountry = \"US\"\ncategories = [\"user.contact.email\"]\nsafeguards = \"Standard contractual clauses.\"\n",
            policy::DEFAULT_POLICY
        );
        let html = PolicyPage::new(&published(&text)).render().unwrap();
        for needle in [
            "<html lang=\"en\">",
            "<h1",
            "Version 3",
            "2026-11-18",
            "user.contact.email",
            "Email address",
            "user.location.precise",
            "Running the service",
            "Our contract with you",
            "GDPR Art. 6(1)(c)",
            "as long as your account exists",
            "30 days",
            "Mail &#60;b&#62;Co&#60;/b&#62;",
            "United States (US)",
            "Standard contractual clauses.",
            "privacy@example.com",
            "dpo@example.com",
            "16",
            "Art. 15",
            "Art. 21",
            "Strictly necessary",
        ] {
            assert!(html.contains(needle), "{needle} missing from\n{html}");
        }
        assert!(!html.contains("<b>Co"), "not escaped");
        // No external assets.
        for needle in ["<script", "<img", "<link", "src=", "@import", "url("] {
            assert!(!html.contains(needle), "{needle} in the page");
        }
    }

    #[test]
    fn without_processors_the_page_says_no_one_receives_data() {
        let html = PolicyPage::new(&published(policy::DEFAULT_POLICY))
            .render()
            .unwrap();
        assert!(
            html.contains("We give your personal data to no one else"),
            "{html}"
        );
        assert!(html.contains("We make no decisions about you"), "{html}");
    }
}

async fn review_of(state: &AppState, user: thingsafe_core::UserId) -> ApiResult<Value> {
    let versions = state.store.policy_versions().await?;
    let accepted = state.store.accepted_policy_version(user).await?;
    let review = thingsafe_privacy::review::review(&versions, accepted);
    let mut view = serde_json::to_value(&review).expect("a review serialises");
    view["policyUrl"] = json!("/privacy");
    Ok(view)
}

/// Whether the signed-in person is asked to review the policy (a material change since the
/// version they accepted), and what changed since.
pub(super) async fn my_review(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(review_of(&state, principal.user.id).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Accept {
    version: u32,
}

/// The person accepts the version in force after reading it; recorded on their account
/// and in their consent ledger.
pub(super) async fn accept(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
    crate::extract::Json(accept): crate::extract::Json<Accept>,
) -> ApiResult<axum::Json<Value>> {
    let current = state.policy.version.version;
    if accept.version != current {
        return Err(ApiError::bad_request(format!(
            "version {} is not the policy in force: read version {current} at /privacy and accept that one",
            accept.version
        )));
    }
    let entry = thingsafe_store::ConsentRecord {
        purpose: "privacy_policy".into(),
        granted: true,
        method: "review".into(),
        policy_version: Some(current),
        at_ms: thingsafe_core::now_ms(),
    };
    state
        .store
        .accept_policy_version(principal.user.id, current, entry)
        .await?;
    Ok(axum::Json(review_of(&state, principal.user.id).await?))
}
