//! Data-subject requests (`/api/privacy/requests*`): made by signed-in people (password
//! re-entered for access, portability and erasure) or by people without an account (an
//! emailed code proves the address); the administrators' queue with due dates, extension,
//! assignment and an audit trail. Also the person's own rectification (`PATCH
//! /api/privacy/me`), restriction (`POST /api/privacy/me/restriction`), and the recipients
//! told about them (`GET /api/privacy/me/recipients`, Art. 19). The rules are the privacy
//! engine's (`thingsafe_privacy::requests`, `recipients`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use thingsafe_core::{Authority, User, UserId, now_ms, validate};
use thingsafe_privacy::audit;
use thingsafe_privacy::recipients::{self, Event};
use thingsafe_privacy::requests::{self, Action};
use thingsafe_store::{
    CodeCheck, ConsentRecord, ConsentSubject, NewPrivacyRequest, PrivacyRequest, ProfileChange,
    RequestEvent, RequestFilter, RequestKind, RequestStatus,
};

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, parse_id};

fn kind(raw: &str) -> ApiResult<RequestKind> {
    RequestKind::parse(raw.trim()).ok_or_else(|| {
        let allowed: Vec<&str> = RequestKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::bad_request(format!(
            "\"type\" {raw:?} is not a kind of request: use one of {}",
            allowed.join(", ")
        ))
    })
}

fn details(raw: Option<String>) -> ApiResult<Option<String>> {
    let d = raw.map(|d| d.trim().to_string()).filter(|d| !d.is_empty());
    if d.as_ref().is_some_and(|d| d.chars().count() > 4000) {
        return Err(ApiError::bad_request(
            "\"details\" is longer than 4000 characters",
        ));
    }
    Ok(d)
}

/// A JSON body that may be left out (all its fields are optional).
fn optional_body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("The body is not what this call takes: {e}")))
}

fn event(actor: &str, action: &str, note: Option<&str>) -> RequestEvent {
    RequestEvent {
        at_ms: now_ms(),
        actor: actor.into(),
        action: action.into(),
        note: note.map(str::to_string),
    }
}

fn date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

/// Sends a message about a request; a failure is logged (the request stands).
async fn tell(state: &AppState, to: &str, subject: &str, text: &str) {
    if let Err(e) = state.mailer.send(to, subject, text).await {
        tracing::error!(error = %e, "a message about a data-subject request was not sent");
    }
}

async fn tell_received(state: &AppState, r: &PrivacyRequest) {
    if let Some(to) = &r.email {
        let text = format!(
            "We received your {} request (reference {}).\n\nWe will answer by {} at the latest.\n",
            r.kind.as_str().to_lowercase(),
            r.id,
            date(r.due_ms)
        );
        tell(state, to, "We received your privacy request", &text).await;
    }
}

async fn tell_closed(state: &AppState, r: &PrivacyRequest) {
    let Some(to) = &r.email else { return };
    let note = r
        .events
        .last()
        .and_then(|e| e.note.clone())
        .unwrap_or_default();
    let (subject, outcome) = match r.status {
        RequestStatus::Completed => ("Your privacy request is complete", "is complete"),
        _ => ("Your privacy request was refused", "was refused"),
    };
    let text = format!(
        "Your {} request (reference {}) {outcome}.\n\n{note}\n",
        r.kind.as_str().to_lowercase(),
        r.id
    );
    tell(state, to, subject, &text).await;
}

async fn check_password(state: &AppState, user: &User, password: Option<String>) -> ApiResult<()> {
    let password = password.unwrap_or_default();
    if password.is_empty() {
        return Err(ApiError::bad_request(
            "Enter your password to confirm it is you (\"password\")",
        )
        .on_field("password"));
    }
    let stored = state
        .store
        .login_record(&user.email)
        .await?
        .filter(|r| r.user.id == user.id)
        .and_then(|r| r.password_hash);
    if !super::accounts::verify_password(password, stored).await? {
        return Err(ApiError::bad_request("The password is not right").on_field("password"));
    }
    Ok(())
}

// --- requests by signed-in people ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignedInRequest {
    #[serde(rename = "type")]
    kind: String,
    details: Option<String>,
    password: Option<String>,
    /// For an objection: the purpose objected to (`marketing` is honoured at once).
    purpose: Option<String>,
}

async fn new_signed_in_request(
    state: &AppState,
    user: &User,
    kind: RequestKind,
    details: Option<String>,
    verified_by: &str,
) -> ApiResult<PrivacyRequest> {
    let created = now_ms();
    let request = NewPrivacyRequest {
        id: uuid::Uuid::new_v4(),
        kind,
        user: Some(user.id),
        tenant: user.tenant_id,
        email: user.email.clone(),
        details,
        status: RequestStatus::Verified,
        created_ms: created,
        due_ms: requests::due_ms(created, &state.policy.policy.request_deadline),
        code: None,
        events: vec![
            event("requester", "RECEIVED", None),
            event("system", "VERIFIED", Some(verified_by)),
        ],
    };
    Ok(state.store.create_privacy_request(request).await?)
}

/// Closes a request the system fulfilled itself (an objection to marketing).
async fn complete_by_system(
    state: &AppState,
    r: PrivacyRequest,
    note: &str,
) -> ApiResult<PrivacyRequest> {
    let update = thingsafe_store::RequestUpdate {
        from: r.status,
        status: RequestStatus::Completed,
        due_ms: r.due_ms,
        extended: r.extended,
        assignee: r.assignee,
        closed_ms: Some(now_ms()),
        event: event("system", "COMPLETED", Some(note)),
    };
    Ok(state
        .store
        .update_privacy_request(&thingsafe_store::Scope::System, r.id, update)
        .await?)
}

pub(super) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<SignedInRequest>,
) -> ApiResult<(StatusCode, axum::Json<PrivacyRequest>)> {
    let kind = kind(&body.kind)?;
    let details = details(body.details)?;
    let user = &principal.user;
    let verified_by = match kind {
        RequestKind::Access | RequestKind::Portability | RequestKind::Erasure => {
            check_password(&state, user, body.password).await?;
            "signed in, password re-entered"
        }
        _ => "signed in",
    };
    let objects_to_marketing = match (kind, body.purpose.as_deref().map(str::trim)) {
        (RequestKind::Objection, Some("marketing")) => true,
        (RequestKind::Objection, None) => false,
        (RequestKind::Objection, Some(other)) => {
            return Err(ApiError::bad_request(format!(
                "\"purpose\" {other:?}: only \"marketing\" is honoured at once; for anything else describe your objection in \"details\""
            )));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "\"purpose\" belongs to an OBJECTION request only",
            ));
        }
        (_, None) => false,
    };
    let mut request = new_signed_in_request(&state, user, kind, details, verified_by).await?;
    if objects_to_marketing {
        object_to_marketing(&state, user.id).await?;
        request = complete_by_system(
            &state,
            request,
            "Marketing stopped at once: the marketing consent is withdrawn (Art. 21(3)).",
        )
        .await?;
    } else if kind == RequestKind::Restriction {
        restrict(&state, user.id).await?;
    }
    tell_received(&state, &request).await;
    if request.status.is_closed() {
        tell_closed(&state, &request).await;
    }
    Ok((StatusCode::CREATED, axum::Json(request)))
}

/// Art. 21(3): an objection to direct marketing is absolute: the consent is withdrawn now.
async fn object_to_marketing(state: &AppState, user: UserId) -> ApiResult<()> {
    let record = ConsentRecord {
        purpose: "marketing".into(),
        granted: false,
        method: thingsafe_privacy::consent::OBJECTION.into(),
        policy_version: Some(state.policy.version.version),
        at_ms: now_ms(),
    };
    state
        .store
        .record_consents(ConsentSubject::User(user), vec![record])
        .await?;
    Ok(())
}

/// Art. 19: enqueues the notices to the processors that receive `categories` (all they
/// receive, for `None`) and wakes the delivery job.
pub(super) async fn tell_recipients(
    state: &AppState,
    user: UserId,
    event: Event,
    categories: Option<&[&str]>,
) -> ApiResult<()> {
    let notices = recipients::notices(&state.policy.policy, user, event, categories, now_ms());
    state.store.enqueue_notices(notices).await?;
    state.notices_wanted.notify_one();
    Ok(())
}

async fn restrict(state: &AppState, user: UserId) -> ApiResult<()> {
    if state.store.set_restricted(user, true).await? {
        tell_recipients(state, user, Event::Restriction, None).await?;
    }
    Ok(())
}

pub(super) async fn mine(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Vec<PrivacyRequest>>> {
    Ok(axum::Json(
        state.store.requests_of(principal.user.id).await?,
    ))
}

// --- requests by people without an account --------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PublicRequest {
    email: String,
    #[serde(rename = "type")]
    kind: String,
    details: Option<String>,
}

pub(super) async fn create_public(
    State(state): State<AppState>,
    Json(body): Json<PublicRequest>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let email = validate::email(&body.email)?;
    let kind = kind(&body.kind)?;
    let details = details(body.details)?;
    let created = now_ms();
    let code = requests::verification_code();
    let request = NewPrivacyRequest {
        id: uuid::Uuid::new_v4(),
        kind,
        user: None,
        tenant: None,
        email: email.clone(),
        details,
        status: RequestStatus::Received,
        created_ms: created,
        due_ms: requests::due_ms(created, &state.policy.policy.request_deadline),
        code: Some((code.clone(), created + requests::CODE_TTL_MS)),
        events: vec![event("requester", "RECEIVED", Some("without an account"))],
    };
    let request = state.store.create_privacy_request(request).await?;
    let text = format!(
        "Someone asked, with this email address, for a {} request about personal data (reference {}).\n\nIf it was you, your code is: {code}\n\nIt works for {} minutes. If it was not you, ignore this message: nothing happens without the code.\n",
        kind.as_str().to_lowercase(),
        request.id,
        requests::CODE_TTL_MS / 60_000
    );
    state
        .mailer
        .send(&email, "Confirm your privacy request", &text)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the verification code was not sent");
            ApiError::internal("The verification code could not be sent: try again later")
        })?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "id": request.id,
            "status": request.status,
            "message": "We sent a code to this address: send it to /api/privacy/requests/{id}/verify to confirm the request",
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Verification {
    code: String,
}

pub(super) async fn verify(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<Verification>,
) -> ApiResult<axum::Json<Value>> {
    let id: uuid::Uuid = parse_id("request id", &id)?;
    let check = state
        .store
        .check_request_code(id, &body.code, requests::MAX_CODE_ATTEMPTS, now_ms())
        .await?;
    match check {
        CodeCheck::Verified => {
            let request = state
                .store
                .privacy_request(&thingsafe_store::Scope::System, id)
                .await?;
            tell_received(&state, &request).await;
            Ok(axum::Json(json!({
                "id": id, "status": request.status, "dueTime": request.due_ms
            })))
        }
        CodeCheck::Wrong { attempts_left } => Err(ApiError::bad_request(format!(
            "The code is not right: {attempts_left} attempts left"
        ))
        .on_field("code")),
        CodeCheck::Expired => Err(ApiError::bad_request(
            "The code has expired: make the request again to get a new one",
        )),
        CodeCheck::Closed => Err(ApiError::bad_request(
            "This request cannot be verified any more (verified already, or too many wrong codes): make the request again",
        )),
    }
}

// --- the administrators' queue ------------------------------------------------------------

fn require_admin(principal: &Principal) -> ApiResult<()> {
    principal.require(&[Authority::SysAdmin, Authority::TenantAdmin])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueQuery {
    status: Option<String>,
    due: Option<String>,
}

pub(super) async fn queue(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<QueueQuery>,
) -> ApiResult<axum::Json<Vec<PrivacyRequest>>> {
    require_admin(&principal)?;
    let status = q
        .status
        .map(|s| {
            RequestStatus::parse(&s).ok_or_else(|| {
                let allowed: Vec<&str> = RequestStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_request(format!(
                    "status {s:?} is not a request status: use one of {}",
                    allowed.join(", ")
                ))
            })
        })
        .transpose()?;
    let now = now_ms();
    let open_due_before_ms = match q.due.as_deref() {
        None => None,
        Some("overdue") => Some(now),
        Some("soon") => Some(now + requests::DUE_SOON_MS),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "due {other:?}: use \"overdue\" (past the due date) or \"soon\" (due within 7 days, overdue included)"
            )));
        }
    };
    let filter = RequestFilter {
        status,
        open_due_before_ms,
    };
    Ok(axum::Json(
        state
            .store
            .privacy_requests(&principal.scope(), &filter)
            .await?,
    ))
}

pub(super) async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<PrivacyRequest>> {
    require_admin(&principal)?;
    let id = parse_id("request id", &id)?;
    Ok(axum::Json(
        state.store.privacy_request(&principal.scope(), id).await?,
    ))
}

async fn act(
    state: &AppState,
    principal: &Principal,
    id: &str,
    action: Action,
) -> ApiResult<PrivacyRequest> {
    require_admin(principal)?;
    let name = match &action {
        Action::Assign(_) => "assign",
        Action::Extend { .. } => "extend",
        Action::Complete { .. } => "complete",
        Action::Reject { .. } => "reject",
    };
    let audited = format!("{}{name}", audit::action::REQUEST_PREFIX);
    let id = parse_id("request id", id)?;
    let scope = principal.scope();
    let current = state.store.privacy_request(&scope, id).await?;
    let update = requests::apply(&current, principal.user.id, action, now_ms())
        .map_err(ApiError::bad_request)?;
    let updated = state
        .store
        .update_privacy_request(&scope, id, update)
        .await?;
    audit::Audit::new(&audited)
        .by(&principal.user)
        .tenant(updated.tenant)
        .target("request", updated.id)
        .details(json!({"type": updated.kind, "status": updated.status}))
        .record(state.store.as_ref())
        .await;
    if updated.status.is_closed() {
        tell_closed(state, &updated).await;
    }
    Ok(updated)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Assignment {
    assignee: Option<String>,
}

pub(super) async fn assign(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<PrivacyRequest>> {
    let body: Assignment = optional_body(&body)?;
    let to = match body.assignee {
        None => principal.user.id,
        Some(raw) => {
            let to: UserId = parse_id("assignee", &raw)?;
            let user = state.store.user(&principal.scope(), to).await?;
            if user.authority == Authority::CustomerUser {
                return Err(ApiError::bad_request(
                    "\"assignee\" must be an administrator",
                ));
            }
            to
        }
    };
    Ok(axum::Json(
        act(&state, &principal, &id, Action::Assign(to)).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Extension {
    days: u32,
    reason: String,
}

pub(super) async fn extend(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<Extension>,
) -> ApiResult<axum::Json<PrivacyRequest>> {
    let action = Action::Extend {
        days: body.days,
        reason: body.reason,
    };
    let updated = act(&state, &principal, &id, action).await?;
    if let Some(to) = &updated.email {
        let reason = updated.events.last().and_then(|e| e.note.clone());
        let text = format!(
            "We need more time to answer your {} request (reference {}): we will answer by {}.\n\nWhy: {}\n",
            updated.kind.as_str().to_lowercase(),
            updated.id,
            date(updated.due_ms),
            reason.unwrap_or_default()
        );
        tell(&state, to, "Your privacy request takes longer", &text).await;
    }
    Ok(axum::Json(updated))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Completion {
    note: Option<String>,
}

pub(super) async fn complete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<PrivacyRequest>> {
    let note = optional_body::<Completion>(&body)?.note;
    Ok(axum::Json(
        act(&state, &principal, &id, Action::Complete { note }).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rejection {
    reason: String,
}

pub(super) async fn reject(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<Rejection>,
) -> ApiResult<axum::Json<PrivacyRequest>> {
    let action = Action::Reject {
        reason: body.reason,
    };
    Ok(axum::Json(act(&state, &principal, &id, action).await?))
}

/// Lifts the restriction a RESTRICTION request set: the person is told first (Art. 18(3)),
/// then processing resumes and the request is completed.
pub(super) async fn lift(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<PrivacyRequest>> {
    require_admin(&principal)?;
    let request_id = parse_id("request id", &id)?;
    let current = state
        .store
        .privacy_request(&principal.scope(), request_id)
        .await?;
    let (RequestKind::Restriction, Some(user)) = (current.kind, current.user) else {
        return Err(ApiError::bad_request(
            "only the RESTRICTION request of a person with an account lifts a restriction",
        ));
    };
    if current.status.is_closed() {
        return Err(ApiError::bad_request("the restriction was lifted already"));
    }
    let Some(to) = &current.email else {
        return Err(ApiError::bad_request(
            "the person cannot be told (their account is gone): nothing to lift",
        ));
    };
    state
        .mailer
        .send(
            to,
            "The restriction of your data is about to be lifted",
            &format!(
                "The restriction of the processing of your personal data (request {}) is being lifted: your data will be used again as our privacy policy describes.\n",
                current.id
            ),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "the notice before lifting a restriction was not sent");
            ApiError::internal(
                "The person could not be told, so the restriction stays (Art. 18(3)): try again later",
            )
        })?;
    let updated = act(
        &state,
        &principal,
        &id,
        Action::Complete {
            note: Some("Restriction lifted; the person was told first (Art. 18(3)).".into()),
        },
    )
    .await?;
    if state.store.set_restricted(user, false).await? {
        tell_recipients(&state, user, Event::RestrictionLifted, None).await?;
    }
    Ok(axum::Json(updated))
}

// --- the person's own rectification, restriction and recipients -------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Rectification {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

/// An empty name clears it; an absent one is left as it is.
fn name_change(field: &'static str, raw: Option<String>) -> ApiResult<Option<Option<String>>> {
    raw.map(|s| match s.trim() {
        "" => Ok(None),
        _ => validate::name(field, &s, 255)
            .map(Some)
            .map_err(ApiError::from),
    })
    .transpose()
}

/// Art. 16: the person corrects their profile; recipients of what changed are told.
pub(super) async fn rectify(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<Rectification>,
) -> ApiResult<axum::Json<Value>> {
    let user = &principal.user;
    let first_name = name_change("firstName", body.first_name)?;
    let last_name = name_change("lastName", body.last_name)?;
    let email = body.email.map(|e| validate::email(&e)).transpose()?;
    let email = email.filter(|e| *e != user.email);
    if first_name.is_none() && last_name.is_none() && email.is_none() {
        return Err(ApiError::bad_request(
            "Nothing to change: send \"firstName\", \"lastName\" or \"email\"",
        ));
    }
    if email.is_some() {
        check_password(&state, user, body.password).await?;
    }
    let mut categories = Vec::new();
    if first_name.is_some() || last_name.is_some() {
        categories.push("user.name");
    }
    if email.is_some() {
        categories.push("user.contact.email");
    }
    let change = ProfileChange {
        email,
        first_name,
        last_name,
    };
    let updated = state.store.update_profile(user.id, change).await?;
    tell_recipients(&state, user.id, Event::Rectification, Some(&categories)).await?;
    Ok(axum::Json(json!({
        "email": updated.email,
        "firstName": updated.first_name,
        "lastName": updated.last_name,
        "changed": categories,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RestrictionBody {
    details: Option<String>,
}

/// Art. 18: processing of the caller's data is restricted now, until an administrator
/// lifts it on the RESTRICTION request this opens.
pub(super) async fn restrict_me(
    State(state): State<AppState>,
    principal: Principal,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, axum::Json<PrivacyRequest>)> {
    let body: RestrictionBody = optional_body(&body)?;
    let details = details(body.details)?;
    let user = &principal.user;
    if state.store.restricted_since(user.id).await?.is_some() {
        return Err(ApiError::bad_request(
            "The processing of your data is restricted already",
        ));
    }
    let request =
        new_signed_in_request(&state, user, RequestKind::Restriction, details, "signed in").await?;
    restrict(&state, user.id).await?;
    tell_received(&state, &request).await;
    Ok((StatusCode::CREATED, axum::Json(request)))
}

/// Art. 19: who receives the caller's data, and what they were told about it.
pub(super) async fn my_recipients(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<Value>> {
    let notices = state.store.notices_of(principal.user.id).await?;
    let restricted = state.store.restricted_since(principal.user.id).await?;
    let processors: Vec<Value> = state
        .policy
        .policy
        .processors
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "service": p.service,
                "country": p.country,
                "categories": p.categories,
                "toldOfChanges": p.notify_url.is_some(),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "recipients": processors,
        "notices": notices,
        "restrictedSince": restricted,
    })))
}
