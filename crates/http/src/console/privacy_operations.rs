//! The "Privacy & security" pages about how data is kept and where it goes: retention and
//! the last sweeps, processors and the yearly disclosure list, tenant exports (tenant
//! administrators) and backups (the system administrator). Changes go through the JSON API
//! from console.js (`/api/privacy/retention*`, `/api/privacy/tenant/exports/schedule`).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use thingsafe_core::policy::Retention;
use thingsafe_privacy::{disclosures, retention};
use thingsafe_store::Scope;

use super::error_page;
use super::privacy_admin::{Section, admins_only, category_label, sections_for};
use super::{Layout, Time, Viewer, render};
use crate::AppState;

/// A file's size for people: "512 bytes", "48 kB", "3.2 MB".
fn size(bytes: Option<u64>) -> String {
    match bytes {
        None => String::new(),
        Some(b) if b < 1_000 => format!("{b} bytes"),
        Some(b) if b < 1_000_000 => format!("{} kB", b.div_ceil(1_000)),
        Some(b) => format!("{:.1} MB", b as f64 / 1_000_000.0),
    }
}

/// A run's outcome in words.
fn outcome(status: &str, error: Option<&str>) -> String {
    match (status, error) {
        ("ok", _) => "Done".into(),
        ("running", _) => "Running".into(),
        ("interrupted", _) => "Interrupted (the server stopped)".into(),
        (_, Some(e)) => format!("Failed: {e}"),
        (other, None) => other.to_string(),
    }
}

/// Data categories in words, joined.
fn labels<'a>(
    policy: &thingsafe_core::policy::Policy,
    keys: impl Iterator<Item = &'a String>,
) -> String {
    keys.map(|k| category_label(policy, k))
        .collect::<Vec<_>>()
        .join(", ")
}

// --- retention ----------------------------------------------------------------------------

pub(super) struct CategoryRetention {
    pub key: String,
    pub description: String,
    pub kept: String,
}

pub(super) struct SweepRow {
    pub when: Time,
    pub took: String,
    pub points: u64,
    pub outcome: String,
    pub failed: bool,
}

#[derive(Template)]
#[template(path = "console/admin_retention.html")]
struct RetentionPage {
    layout: Layout,
    sections: Vec<&'static Section>,
    current: &'static str,
    categories: Vec<CategoryRetention>,
    /// The policy's limit on telemetry in words, if it sets one.
    policy_telemetry: Option<String>,
    /// The tenant's own, shorter one (tenant administrators only).
    tenant_days: Option<u32>,
    can_set: bool,
    sweeps: Vec<SweepRow>,
}

pub(super) async fn retention(State(state): State<AppState>, viewer: Viewer) -> Response {
    if !viewer.is_admin() {
        return admins_only(&viewer);
    }
    let scope = viewer.principal.scope();
    let tenant = match &scope {
        Scope::System => None,
        other => other.tenant().ok(),
    };
    let tenant_days = match tenant {
        Some(_) => match state.store.tenant_retention(&scope).await {
            Ok(d) => d,
            Err(e) => return error_page(&viewer, e),
        },
        None => None,
    };
    let sweeps = match state.store.sweeps(tenant, 10).await {
        Ok(s) => s,
        Err(e) => return error_page(&viewer, e),
    };
    let policy = &state.policy.policy;
    render(&RetentionPage {
        layout: Layout::signed_in("Retention", "admin", &viewer),
        sections: sections_for(&viewer),
        current: "/admin/retention",
        categories: policy
            .categories
            .iter()
            .map(|(key, c)| CategoryRetention {
                key: key.clone(),
                description: c.description.clone(),
                kept: c.retention.human(),
            })
            .collect(),
        policy_telemetry: policy
            .categories
            .get(retention::TELEMETRY_CATEGORY)
            .and_then(|c| match c.retention {
                Retention::For(period) => Some(period.human()),
                Retention::AccountLifetime => None,
            }),
        tenant_days,
        can_set: viewer.is_tenant_admin(),
        sweeps: sweeps
            .iter()
            .map(|s| SweepRow {
                when: Time(s.started_ms),
                took: format!("{:.1} s", (s.finished_ms - s.started_ms) as f64 / 1000.0),
                points: s.telemetry_points,
                outcome: s
                    .error
                    .as_ref()
                    .map_or_else(|| "Done".to_string(), |e| format!("Failed: {e}")),
                failed: s.error.is_some(),
            })
            .collect(),
    })
}

// --- processors and disclosures -------------------------------------------------------------

pub(super) struct ProcessorRow {
    pub name: String,
    pub service: String,
    pub country: String,
    pub categories: String,
    pub safeguards: String,
    pub told_of_changes: bool,
}

pub(super) struct RecipientRow {
    pub recipient: String,
    pub declared: bool,
    pub categories: String,
    pub purposes: String,
    pub disclosures: u64,
    pub subjects: u64,
}

#[derive(Deserialize, Default)]
pub(super) struct YearQuery {
    year: Option<String>,
}

#[derive(Template)]
#[template(path = "console/admin_recipients.html")]
struct RecipientsPage {
    layout: Layout,
    sections: Vec<&'static Section>,
    current: &'static str,
    processors: Vec<ProcessorRow>,
    year: i32,
    years: Vec<i32>,
    recipients: Vec<RecipientRow>,
    problem: Option<String>,
}

pub(super) async fn recipients(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<YearQuery>,
) -> Response {
    if !viewer.is_admin() {
        return admins_only(&viewer);
    }
    let this_year = time::OffsetDateTime::now_utc().year();
    let mut problem = None;
    let year = match q.year.as_deref().map(str::trim).filter(|y| !y.is_empty()) {
        None => this_year,
        Some(raw) => match raw.parse::<i32>() {
            Ok(y) if (2000..=this_year).contains(&y) => y,
            _ => {
                problem = Some(format!(
                    "{raw:?} is not a year from 2000 to {this_year}; showing {this_year}."
                ));
                this_year
            }
        },
    };
    let policy = &state.policy.policy;
    let report = match disclosures::yearly_report(
        state.store.as_ref(),
        &viewer.principal.scope(),
        policy,
        year,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return error_page(&viewer, e),
    };
    render(&RecipientsPage {
        layout: Layout::signed_in("Processors & disclosures", "admin", &viewer),
        sections: sections_for(&viewer),
        current: "/admin/recipients",
        processors: policy
            .processors
            .iter()
            .map(|p| ProcessorRow {
                name: p.name.clone(),
                service: p.service.clone(),
                country: p.country.clone(),
                categories: labels(policy, p.categories.iter()),
                safeguards: p.safeguards.clone().unwrap_or_default(),
                told_of_changes: p.notify_url.is_some(),
            })
            .collect(),
        year,
        years: (this_year - 4..=this_year).rev().collect(),
        recipients: report
            .into_iter()
            .map(|r| RecipientRow {
                recipient: r.recipient,
                declared: r.declared_processor,
                categories: labels(policy, r.categories.iter()),
                purposes: r.purposes.into_iter().collect::<Vec<_>>().join(", "),
                disclosures: r.disclosures,
                subjects: r.subjects,
            })
            .collect(),
        problem,
    })
}

// --- tenant exports -------------------------------------------------------------------------

pub(super) struct ExportRow {
    pub id: String,
    pub when: Time,
    pub size: String,
    pub outcome: String,
    pub ok: bool,
}

#[derive(Template)]
#[template(path = "console/admin_exports.html")]
struct ExportsPage {
    layout: Layout,
    sections: Vec<&'static Section>,
    current: &'static str,
    schedule: &'static str,
    keep: u32,
    exports: Vec<ExportRow>,
}

/// As `routes/tenant_exports.rs` keeps them unless told otherwise.
const DEFAULT_KEEP: u32 = 3;

pub(super) async fn exports(State(state): State<AppState>, viewer: Viewer) -> Response {
    if !viewer.is_tenant_admin() {
        return super::not_for_role(
            &viewer,
            "Only a tenant administrator exports the whole tenant's data.",
        );
    }
    let scope = viewer.principal.scope();
    let tenant = match scope.tenant() {
        Ok(t) => t,
        Err(e) => return error_page(&viewer, e),
    };
    let (schedule, exports) = match tokio::try_join!(
        state.store.tenant_export_schedule(&scope),
        state.store.tenant_exports(Some(tenant)),
    ) {
        Ok(x) => x,
        Err(e) => return error_page(&viewer, e),
    };
    render(&ExportsPage {
        layout: Layout::signed_in("Tenant exports", "admin", &viewer),
        sections: sections_for(&viewer),
        current: "/admin/exports",
        schedule: schedule.map_or("off", |s| s.schedule.as_str()),
        keep: schedule.map_or(DEFAULT_KEEP, |s| s.keep),
        exports: exports
            .iter()
            .map(|e| ExportRow {
                id: e.id.clone(),
                when: Time(e.started_ms),
                size: size(e.bytes),
                outcome: outcome(&e.status, e.error.as_deref()),
                ok: e.status == "ok",
            })
            .collect(),
    })
}

// --- backups --------------------------------------------------------------------------------

pub(super) struct BackupRow {
    pub kind: &'static str,
    pub when: Time,
    pub took: String,
    pub size: String,
    pub file: String,
    pub outcome: String,
    pub failed: bool,
}

#[derive(Template)]
#[template(path = "console/admin_backups.html")]
struct BackupsPage {
    layout: Layout,
    sections: Vec<&'static Section>,
    current: &'static str,
    runs: Vec<BackupRow>,
    /// When the newest good data backup finished, if any.
    last_good: Option<Time>,
}

pub(super) async fn backups(State(state): State<AppState>, viewer: Viewer) -> Response {
    if !viewer.is_system_admin() {
        return super::not_for_role(
            &viewer,
            "Only the system administrator sees the installation's backups.",
        );
    }
    let runs = match state.store.backup_runs(50).await {
        Ok(r) => r,
        Err(e) => return error_page(&viewer, e),
    };
    let last_good = runs
        .iter()
        .filter(|r| r.kind == "data" && r.status == "ok")
        .filter_map(|r| r.finished_ms)
        .max()
        .map(Time);
    render(&BackupsPage {
        layout: Layout::signed_in("Backups", "backups", &viewer),
        sections: sections_for(&viewer),
        current: "/admin/backups",
        last_good,
        runs: runs
            .iter()
            .map(|r| BackupRow {
                kind: if r.kind == "keys" {
                    "Key store"
                } else {
                    "Data"
                },
                when: Time(r.started_ms),
                took: r.finished_ms.map_or_else(String::new, |f| {
                    format!("{:.1} s", (f - r.started_ms) as f64 / 1000.0)
                }),
                size: size(r.bytes),
                file: r.file.clone().unwrap_or_default(),
                outcome: outcome(&r.status, r.error.as_deref()),
                failed: r.status == "failed" || r.status == "interrupted",
            })
            .collect(),
    })
}
