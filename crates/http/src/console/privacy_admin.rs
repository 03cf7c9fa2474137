//! The "Privacy & security" area for administrators (tenant administrators see their
//! tenant; the system administrator the installation): the data-request queue, the breach
//! register with its 72-hour clock, suspensions, the audit log and its chain check. Pages
//! read through the store with the viewer's scope; the actions are console.js calls to
//! the JSON API (`/api/privacy/requests/*`, `/api/privacy/breaches*`, `*/suspension`).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use thingsafe_core::{DeviceId, TenantId, TimestampMs, now_ms};
use thingsafe_privacy::audit::action;
use thingsafe_privacy::breaches::NOTIFY_WITHIN_MS;
use thingsafe_privacy::requests::DUE_SOON_MS;
use thingsafe_store::records::AuditFilter;
use thingsafe_store::{PrivacyRequest, RequestFilter, RequestStatus, SuspensionTarget};

use super::admin::everything;
use super::privacy_center::{kind_words, status_words};
use super::{Layout, Time, Viewer, error_page, not_for_role, render};
use crate::AppState;

const HOUR_MS: i64 = 60 * 60 * 1000;
const DAY_MS: i64 = 24 * HOUR_MS;

pub(super) fn admins_only(viewer: &Viewer) -> Response {
    not_for_role(
        viewer,
        "Only an administrator (of a tenant or of the installation) sees the privacy and security records. Your own data and requests are on your profile page.",
    )
}

/// "30 days", "1 day", "5 hours": a due date's distance for people, to the nearest unit,
/// at least "1 hour".
fn span(ms: i64) -> String {
    let ms = ms.abs();
    let (n, unit) = if ms >= 2 * DAY_MS {
        ((ms + DAY_MS / 2) / DAY_MS, "day")
    } else {
        (((ms + HOUR_MS / 2) / HOUR_MS).max(1), "hour")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// "5 hours", "1 hour": the 72-hour clock counts in hours, rounded down.
fn hours(ms: i64) -> String {
    let n = ms.abs() / HOUR_MS;
    format!("{n} hour{}", if n == 1 { "" } else { "s" })
}

/// Who sees a page of the area.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Audience {
    Admins,
    TenantAdmins,
    SystemAdmin,
}

/// Where each page of the area sits in its own navigation.
pub(super) struct Section {
    pub path: &'static str,
    pub name: &'static str,
    audience: Audience,
}

const SECTIONS: &[Section] = &[
    Section {
        path: "/admin/requests",
        name: "Data requests",
        audience: Audience::Admins,
    },
    Section {
        path: "/admin/breaches",
        name: "Breaches",
        audience: Audience::Admins,
    },
    Section {
        path: "/admin/retention",
        name: "Retention",
        audience: Audience::Admins,
    },
    Section {
        path: "/admin/recipients",
        name: "Processors & disclosures",
        audience: Audience::Admins,
    },
    Section {
        path: "/admin/suspensions",
        name: "Suspensions",
        audience: Audience::Admins,
    },
    Section {
        path: "/admin/exports",
        name: "Tenant exports",
        audience: Audience::TenantAdmins,
    },
    Section {
        path: "/admin/backups",
        name: "Backups",
        audience: Audience::SystemAdmin,
    },
    Section {
        path: "/admin/audit",
        name: "Audit log",
        audience: Audience::Admins,
    },
];

/// The area's pages `viewer` may open.
pub(super) fn sections_for(viewer: &Viewer) -> Vec<&'static Section> {
    SECTIONS
        .iter()
        .filter(|s| match s.audience {
            Audience::Admins => viewer.is_admin(),
            Audience::TenantAdmins => viewer.is_tenant_admin(),
            Audience::SystemAdmin => viewer.is_admin() && !viewer.is_tenant_admin(),
        })
        .collect()
}

// --- overview -----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/admin_home.html")]
struct HomePage {
    layout: Layout,
    sections: Vec<&'static Section>,
    current: &'static str,
    open_requests: usize,
    overdue_requests: usize,
    running_clocks: usize,
    late_breaches: usize,
    suspensions: usize,
}

pub(super) async fn home(State(state): State<AppState>, viewer: Viewer) -> Response {
    if !viewer.is_admin() {
        return admins_only(&viewer);
    }
    let scope = viewer.principal.scope();
    let now = now_ms();
    let everything = RequestFilter::default();
    let (queue, breaches, suspensions) = match tokio::try_join!(
        state.store.privacy_requests(&scope, &everything),
        state.store.breaches(&scope),
        state.store.suspensions(&scope),
    ) {
        Ok(x) => x,
        Err(e) => return error_page(&viewer, e),
    };
    let open: Vec<_> = queue.iter().filter(|r| !r.status.is_closed()).collect();
    let running: Vec<_> = breaches
        .iter()
        .filter(|b| b.authority_notified_ms.is_none())
        .collect();
    render(&HomePage {
        layout: Layout::signed_in("Privacy & security", "admin", &viewer),
        sections: sections_for(&viewer),
        current: "",
        open_requests: open.len(),
        overdue_requests: open.iter().filter(|r| r.due_ms < now).count(),
        running_clocks: running.len(),
        late_breaches: running
            .iter()
            .filter(|b| b.detected_ms + NOTIFY_WITHIN_MS < now)
            .count(),
        suspensions: suspensions.len(),
    })
}

// --- the data-request queue ---------------------------------------------------------------

pub(super) struct QueueRow {
    pub id: String,
    pub kind: &'static str,
    pub kind_code: &'static str,
    pub status: &'static str,
    pub open: bool,
    pub requester: String,
    pub account: bool,
    pub details: String,
    pub made: Time,
    pub due: Time,
    /// "overdue by 3 days", "due in 5 days"; empty once closed.
    pub due_in_words: String,
    pub overdue: bool,
    pub extended: bool,
    pub assigned_to_me: bool,
    pub assigned: bool,
    /// Trail entries, oldest first: when, and "what (note)".
    pub trail: Vec<(Time, String)>,
}

impl QueueRow {
    fn of(r: &PrivacyRequest, viewer: &Viewer, now: TimestampMs) -> QueueRow {
        let open = !r.status.is_closed();
        let overdue = open && r.due_ms < now;
        let due_in_words = match (open, overdue) {
            (false, _) => String::new(),
            (true, true) => format!("Overdue by {}", span(now - r.due_ms)),
            (true, false) => format!("Due in {}", span(r.due_ms - now)),
        };
        QueueRow {
            id: r.id.to_string(),
            kind: kind_words(r.kind).0,
            kind_code: r.kind.as_str(),
            status: status_words(r.status),
            open,
            requester: r.email.clone().unwrap_or_else(|| "(erased)".to_string()),
            account: r.user.is_some(),
            details: r.details.clone().unwrap_or_default(),
            made: Time(r.created_ms),
            due: Time(r.due_ms),
            due_in_words,
            overdue,
            extended: r.extended,
            assigned_to_me: r.assignee == Some(viewer.principal.user.id),
            assigned: r.assignee.is_some(),
            trail: r
                .events
                .iter()
                .map(|e| {
                    let note = e
                        .note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default();
                    (Time(e.at_ms), format!("{}{note}", e.action.to_lowercase()))
                })
                .collect(),
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct QueueQuery {
    status: Option<String>,
    due: Option<String>,
}

pub(super) struct Choice {
    pub value: &'static str,
    pub name: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "console/admin_requests.html")]
struct RequestsPage {
    layout: Layout,
    sections: Vec<&'static Section>,
    current: &'static str,
    statuses: Vec<Choice>,
    dues: Vec<Choice>,
    filtered: bool,
    rows: Vec<QueueRow>,
    /// A filter value that is not one of the choices.
    problem: Option<String>,
}

pub(super) async fn requests(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<QueueQuery>,
) -> Response {
    if !viewer.is_admin() {
        return admins_only(&viewer);
    }
    let now = now_ms();
    let wanted_status = q.status.as_deref().filter(|s| !s.is_empty());
    let wanted_due = q.due.as_deref().filter(|s| !s.is_empty());
    let mut problem = None;
    let status = wanted_status.and_then(|s| {
        let parsed = RequestStatus::parse(s);
        if parsed.is_none() {
            problem = Some(format!("{s:?} is not a status; showing every status."));
        }
        parsed
    });
    let open_due_before_ms = match wanted_due {
        Some("overdue") => Some(now),
        Some("soon") => Some(now + DUE_SOON_MS),
        None => None,
        Some(other) => {
            problem = Some(format!("{other:?} is not a due date filter; showing all."));
            None
        }
    };
    let filter = RequestFilter {
        status,
        open_due_before_ms,
    };
    let queue = match state
        .store
        .privacy_requests(&viewer.principal.scope(), &filter)
        .await
    {
        Ok(q) => q,
        Err(e) => return error_page(&viewer, e),
    };
    let statuses = RequestStatus::ALL
        .iter()
        .map(|s| Choice {
            value: s.as_str(),
            name: status_words(*s),
            selected: status == Some(*s),
        })
        .collect();
    let dues = [
        ("overdue", "Overdue"),
        ("soon", "Due within 7 days (overdue included)"),
    ]
    .into_iter()
    .map(|(value, name)| Choice {
        value,
        name,
        selected: wanted_due == Some(value),
    })
    .collect();
    render(&RequestsPage {
        layout: Layout::signed_in("Data requests", "admin", &viewer),
        sections: sections_for(&viewer),
        current: "/admin/requests",
        statuses,
        dues,
        filtered: status.is_some() || open_due_before_ms.is_some(),
        rows: queue
            .iter()
            .map(|r| QueueRow::of(r, &viewer, now))
            .collect(),
        problem,
    })
}

// --- the breach register ------------------------------------------------------------------

/// A data category for people: the first clause of its description in the policy
/// ("Your email address: ..." → "Email address"), or its fideslang name.
pub(super) fn category_label(policy: &thingsafe_core::policy::Policy, key: &str) -> String {
    let Some(category) = policy.categories.get(key) else {
        return key.to_string();
    };
    let clause = category
        .description
        .split([':', ',', '.', '('])
        .next()
        .unwrap_or_default()
        .trim();
    let clause = clause.strip_prefix("Your ").unwrap_or(clause);
    let mut chars = clause.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => key.to_string(),
    }
}

pub(super) struct CategoryOption {
    pub key: String,
    pub label: String,
}

/// Words, perhaps a time in them, and words after it.
pub(super) struct Clock(pub String, pub Option<Time>, pub String);

pub(super) struct BreachRow {
    pub id: String,
    pub nature: String,
    pub categories: String,
    pub approx_subjects: u64,
    pub consequences: String,
    pub measures: String,
    pub detected: Time,
    pub notify_by: Time,
    /// The 72-hour clock in words: time left, overdue, or when the authority was told.
    pub clock: Clock,
    pub overdue: bool,
    pub notified: bool,
    pub reference: String,
}

#[derive(Template)]
#[template(path = "console/admin_breaches.html")]
struct BreachesPage {
    layout: Layout,
    sections: Vec<&'static Section>,
    current: &'static str,
    rows: Vec<BreachRow>,
    /// The policy's data categories, to choose from.
    categories: Vec<CategoryOption>,
}

pub(super) async fn breaches(State(state): State<AppState>, viewer: Viewer) -> Response {
    if !viewer.is_admin() {
        return admins_only(&viewer);
    }
    let now = now_ms();
    let list = match state.store.breaches(&viewer.principal.scope()).await {
        Ok(l) => l,
        Err(e) => return error_page(&viewer, e),
    };
    let rows = list
        .iter()
        .map(|b| {
            let notify_by = b.detected_ms + NOTIFY_WITHIN_MS;
            let (clock, overdue) = match b.authority_notified_ms {
                Some(at) if at > notify_by => (
                    Clock(
                        "Authority told ".into(),
                        Some(Time(at)),
                        format!(", {} late", hours(at - notify_by)),
                    ),
                    false,
                ),
                Some(at) => (
                    Clock("Authority told ".into(), Some(Time(at)), " (in time)".into()),
                    false,
                ),
                None if now > notify_by => (
                    Clock(
                        format!(
                            "Overdue by {}: tell the supervisory authority now, with the reasons for the delay",
                            hours(now - notify_by)
                        ),
                        None,
                        String::new(),
                    ),
                    true,
                ),
                None => (
                    Clock(
                        format!(
                            "Clock running: {} left to tell the supervisory authority",
                            hours(notify_by - now)
                        ),
                        None,
                        String::new(),
                    ),
                    false,
                ),
            };
            BreachRow {
                id: b.id.to_string(),
                nature: b.nature.clone(),
                categories: b
                    .categories
                    .iter()
                    .map(|c| category_label(&state.policy.policy, c))
                    .collect::<Vec<_>>()
                    .join(", "),
                approx_subjects: b.approx_subjects,
                consequences: b.consequences.clone(),
                measures: b.measures.clone(),
                detected: Time(b.detected_ms),
                notify_by: Time(notify_by),
                clock,
                overdue,
                notified: b.authority_notified_ms.is_some(),
                reference: b.authority_reference.clone().unwrap_or_default(),
            }
        })
        .collect();
    render(&BreachesPage {
        layout: Layout::signed_in("Breaches", "admin", &viewer),
        sections: sections_for(&viewer),
        current: "/admin/breaches",
        rows,
        categories: state
            .policy
            .policy
            .categories
            .keys()
            .map(|key| CategoryOption {
                label: category_label(&state.policy.policy, key),
                key: key.clone(),
            })
            .collect(),
    })
}

// --- suspensions --------------------------------------------------------------------------

pub(super) struct SuspensionRow {
    pub what: String,
    /// The suspended device's page, when it is a device.
    pub link: Option<String>,
    pub reason: String,
    pub since: Time,
    /// The API path whose DELETE lifts it, when the viewer may lift it (a tenant
    /// administrator cannot lift their tenant's own suspension).
    pub lift: Option<String>,
}

/// A device type a tenant administrator may suspend: the types of the tenant's devices
/// and the names of its device profiles (a provisioned device's type is its profile's
/// name).
pub(super) struct TypeChoice {
    pub value: String,
    pub devices: usize,
    pub suspended: bool,
}

/// A tenant the system administrator may suspend.
pub(super) struct TenantChoice {
    pub id: String,
    pub title: String,
    pub suspended: bool,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "console/admin_suspensions.html")]
struct SuspensionsPage {
    layout: Layout,
    sections: Vec<&'static Section>,
    current: &'static str,
    rows: Vec<SuspensionRow>,
    /// A tenant administrator's form: the tenant's device types.
    device_types: Option<Vec<TypeChoice>>,
    /// The system administrator's form: the installation's tenants.
    tenants: Option<Vec<TenantChoice>>,
}

#[derive(Deserialize, Default)]
pub(super) struct SuspensionsQuery {
    /// The tenant to preselect in the system administrator's form (from the tenants page).
    tenant: Option<String>,
}

pub(super) async fn suspensions(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<SuspensionsQuery>,
) -> Response {
    if !viewer.is_admin() {
        return admins_only(&viewer);
    }
    let scope = viewer.principal.scope();
    let list = match state.store.suspensions(&scope).await {
        Ok(l) => l,
        Err(e) => return error_page(&viewer, e),
    };
    // Tenants' names, for the system administrator's list and form.
    let tenant_titles: Vec<(TenantId, String)> = if viewer.is_system_admin() {
        match state.store.tenants(&scope, &everything()).await {
            Ok(page) => page.data.into_iter().map(|t| (t.id, t.title)).collect(),
            Err(e) => return error_page(&viewer, e),
        }
    } else {
        Vec::new()
    };
    let title_of = |id: TenantId| {
        tenant_titles.iter().find(|(t, _)| *t == id).map_or_else(
            || id.to_string(),
            |(_, title)| format!("“{title}” ({})", short_id(id)),
        )
    };
    let mut rows = Vec::new();
    for s in &list {
        let (what, link, lift) = match &s.target {
            SuspensionTarget::Device(id) => {
                let name = device_name(&state, &scope, *id).await;
                (
                    format!("Device “{name}”"),
                    Some(format!("/devices/{id}")),
                    Some(format!("/api/device/{id}/suspension")),
                )
            }
            SuspensionTarget::DeviceType(t) => (
                if viewer.is_system_admin() {
                    format!(
                        "Every device of type “{t}” of the tenant {}",
                        title_of(s.tenant)
                    )
                } else {
                    format!("Every device of type “{t}”")
                },
                None,
                Some(format!(
                    "/api/deviceType/{}/suspension?tenantId={}",
                    super::url_encode(t),
                    s.tenant
                )),
            ),
            SuspensionTarget::Tenant(t) if viewer.is_system_admin() => (
                format!("The whole tenant {}", title_of(*t)),
                None,
                Some(format!("/api/tenant/{t}/suspension")),
            ),
            SuspensionTarget::Tenant(_) => (
                "Your whole organisation (only the system administrator can lift this)".to_string(),
                None,
                None,
            ),
        };
        rows.push(SuspensionRow {
            what,
            link,
            reason: s.reason.clone(),
            since: Time(s.since_ms),
            lift,
        });
    }
    let device_types = if viewer.is_tenant_admin() {
        let all = everything();
        let (devices, profiles) = match tokio::try_join!(
            state.store.devices(&scope, None, &all),
            state.store.device_profiles(&scope, &all),
        ) {
            Ok(x) => x,
            Err(e) => return error_page(&viewer, e),
        };
        let mut counts: std::collections::BTreeMap<String, usize> =
            profiles.data.into_iter().map(|p| (p.name, 0)).collect();
        for d in devices.data {
            *counts.entry(d.device_type).or_default() += 1;
        }
        Some(
            counts
                .into_iter()
                .map(|(value, devices)| TypeChoice {
                    suspended: list
                        .iter()
                        .any(|s| s.target == SuspensionTarget::DeviceType(value.clone())),
                    value,
                    devices,
                })
                .collect(),
        )
    } else {
        None
    };
    let tenants = viewer.is_system_admin().then(|| {
        let mut choices: Vec<TenantChoice> = tenant_titles
            .iter()
            .map(|(id, title)| TenantChoice {
                id: id.to_string(),
                // Two tenants may have the same name: their ids tell them apart.
                title: format!("{title} ({})", short_id(*id)),
                suspended: list
                    .iter()
                    .any(|s| s.target == SuspensionTarget::Tenant(*id)),
                selected: q.tenant.as_deref() == Some(id.to_string().as_str()),
            })
            .collect();
        choices.sort_by_key(|c| c.title.to_lowercase());
        choices
    });
    render(&SuspensionsPage {
        layout: Layout::signed_in("Suspensions", "admin", &viewer),
        sections: sections_for(&viewer),
        current: "/admin/suspensions",
        rows,
        device_types,
        tenants,
    })
}

/// The first 8 hex digits of a tenant's id: enough to tell two of the same name apart.
fn short_id(id: TenantId) -> String {
    id.to_string().chars().take(8).collect()
}

async fn device_name(state: &AppState, scope: &thingsafe_store::Scope, id: DeviceId) -> String {
    match state.store.device(scope, id).await {
        Ok(d) => d.name,
        Err(_) => id.to_string(),
    }
}

// --- the audit log ------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub(super) struct AuditQuery {
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The audit log's actions in words.
const ACTION_WORDS: &[(&str, &str)] = &[
    (action::LOGIN, "Signed in"),
    (action::LOGIN_FAILED, "Sign-in refused"),
    (action::TWO_FACTOR_ON, "Two-factor sign-in turned on"),
    (action::TWO_FACTOR_OFF, "Two-factor sign-in turned off"),
    (action::TWO_FACTOR_FAILED, "Wrong two-factor code"),
    (action::PASSWORD_RESET, "Password reset"),
    (action::SIGN_UP, "Signed up"),
    (action::CONSENT_CHANGE, "Consent changed"),
    (action::EXPORT, "Personal data downloaded"),
    (action::ERASURE, "Account erased"),
    (action::POLICY_PUBLISHED, "Privacy policy published"),
    (action::CLASSIFICATION_CHANGE, "Data classification changed"),
    (action::USER_CREATE, "User added"),
    (action::USER_DELETE, "User deleted"),
    (action::DEVICE_CREATE, "Device added"),
    (action::DEVICE_DELETE, "Device deleted"),
    (action::DEVICE_PROFILE_DELETE, "Device profile deleted"),
    (action::CUSTOMER_CREATE, "Customer added"),
    (action::CUSTOMER_DELETE, "Customer deleted"),
    (action::BREACH_RECORD, "Breach recorded"),
    (
        action::BREACH_AUTHORITY_NOTIFIED,
        "Breach reported to the authority",
    ),
    (action::BREACH_SUBJECTS_NOTIFIED, "People told of a breach"),
    (action::DISCLOSURE, "Personal data disclosed"),
    (action::BACKUP, "Backup"),
    (action::SUSPENSION, "Suspended"),
    (action::SUSPENSION_LIFT, "Suspension lifted"),
    ("request.assign", "Data request taken on"),
    ("request.extend", "Data request's due date extended"),
    ("request.complete", "Data request completed"),
    ("request.reject", "Data request refused"),
];

fn action_words(code: &str) -> &str {
    ACTION_WORDS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(code, |(_, words)| words)
}

pub(super) struct ActionOption {
    pub value: &'static str,
    pub name: &'static str,
    pub selected: bool,
}

pub(super) struct AuditRow {
    pub seq: i64,
    pub when: Time,
    /// In words; `code` is the action's name in the API.
    pub action: String,
    pub code: String,
    pub actor: String,
    pub target: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "console/admin_audit.html")]
struct AuditPage {
    layout: Layout,
    sections: Vec<&'static Section>,
    current: &'static str,
    actions: Vec<ActionOption>,
    from: String,
    to: String,
    filtered: bool,
    problem: Option<String>,
    rows: Vec<AuditRow>,
    limit: usize,
    chain_ok: bool,
    chain_events: u64,
    chain_problem: String,
}

const AUDIT_PAGE_LIMIT: usize = 500;

/// A date from the filter form (`2026-11-23`): the start of that day, or of the next one
/// for an end bound, in UTC.
fn day_bound(raw: &str, end: bool) -> Result<TimestampMs, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(raw.trim(), format)
        .map_err(|_| format!("{raw:?} is not a date: use the form 2026-11-23"))?;
    let date = if end {
        date.next_day().unwrap_or(date)
    } else {
        date
    };
    Ok(date.midnight().assume_utc().unix_timestamp() * 1000)
}

pub(super) async fn audit(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<AuditQuery>,
) -> Response {
    if !viewer.is_admin() {
        return admins_only(&viewer);
    }
    let action = q.action.unwrap_or_default().trim().to_string();
    let from = q.from.unwrap_or_default();
    let to = q.to.unwrap_or_default();
    let mut problem = None;
    let mut bound = |raw: &str, end: bool| {
        if raw.trim().is_empty() {
            return None;
        }
        day_bound(raw, end)
            .map_err(|e| problem = Some(e))
            .ok()
            .map(|ms| if end { ms - 1 } else { ms })
    };
    let filter = AuditFilter {
        from_ms: bound(&from, false),
        to_ms: bound(&to, true),
        action: (!action.is_empty()).then(|| action.clone()),
        actor: None,
        limit: AUDIT_PAGE_LIMIT,
    };
    let scope = viewer.principal.scope();
    let (events, chain) = match tokio::try_join!(
        state.store.audit_events(&scope, &filter),
        thingsafe_privacy::audit::verify(state.store.as_ref()),
    ) {
        Ok(x) => x,
        Err(e) => return error_page(&viewer, e),
    };
    // Actors by email where the viewer may see them; others (erased, of another tenant)
    // by id.
    let emails: std::collections::HashMap<_, _> = state
        .store
        .users(&scope, None, &everything())
        .await
        .map(|page| page.data.into_iter().map(|u| (u.id, u.email)).collect())
        .unwrap_or_default();
    let rows = events
        .iter()
        .rev()
        .map(|e| AuditRow {
            seq: e.seq,
            when: Time(e.at_ms),
            action: action_words(&e.action).to_string(),
            code: e.action.clone(),
            actor: match e.actor_id {
                None => "the system".to_string(),
                Some(id) if id == viewer.principal.user.id => "you".to_string(),
                Some(id) => emails.get(&id).cloned().unwrap_or_else(|| id.to_string()),
            },
            target: e.target.clone().unwrap_or_default(),
            details: if e.details.is_null() || e.details == serde_json::json!({}) {
                String::new()
            } else {
                e.details.to_string()
            },
        })
        .collect();
    render(&AuditPage {
        layout: Layout::signed_in("Audit log", "admin", &viewer),
        sections: sections_for(&viewer),
        current: "/admin/audit",
        actions: ACTION_WORDS
            .iter()
            .map(|(value, name)| ActionOption {
                value,
                name,
                selected: *value == action,
            })
            .collect(),
        filtered: !action.is_empty() || !from.is_empty() || !to.is_empty(),
        from,
        to,
        problem,
        rows,
        limit: AUDIT_PAGE_LIMIT,
        chain_ok: chain.ok,
        chain_events: chain.events,
        chain_problem: chain
            .broken
            .map(|b| format!("event {} ({}): {}", b.seq, b.action, b.reason))
            .unwrap_or_default(),
    })
}
