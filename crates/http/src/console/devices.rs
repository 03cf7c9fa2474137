//! Device pages: the list, one device, and the dashboard.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::HOST;
use axum::response::Response;
use serde::Deserialize;
use thingsafe_core::payload::{Point, Value};
use thingsafe_core::{
    Attribute, AttributeScope, Device, DeviceId, PageRequest, TimestampMs, now_ms,
};

use super::{Layout, Viewer, error_page, render, url_encode, utc_time};
use crate::AppState;
use crate::extract::parse_id;

/// A device that sent telemetry this recently is shown as online (ThingsBoard's default
/// inactivity timeout).
const ONLINE_WITHIN_MS: TimestampMs = 10 * 60 * 1000;
const PAGE_SIZE: usize = 20;
/// The dashboard shows this many devices, newest first.
const DASHBOARD_DEVICES: usize = 12;
/// Keys charted per device on the dashboard.
const DASHBOARD_KEYS: usize = 3;

/// When a device was last heard from, as pages show it.
pub(super) struct Activity {
    pub online: bool,
    /// Milliseconds since the epoch, for the script that shows it in local time.
    pub ms: Option<TimestampMs>,
    pub utc: String,
}

impl Activity {
    pub(super) fn of(last: Option<TimestampMs>) -> Activity {
        Activity {
            online: last.is_some_and(|ms| now_ms() - ms < ONLINE_WITHIN_MS),
            ms: last,
            utc: last.map(utc_time).unwrap_or_else(|| "never".into()),
        }
    }
}

/// Devices belong to tenants: the system administrator manages tenants instead.
fn not_for_system_admin(viewer: &Viewer) -> Option<Response> {
    viewer.is_system_admin().then(|| {
        super::not_for_role(
            viewer,
            "Devices belong to tenants and their customers; the system administrator manages tenants, and suspends a tenant or a device from Privacy & security.",
        )
    })
}

pub(super) struct DeviceRow {
    pub id: String,
    pub name: String,
    pub device_type: String,
    pub label: String,
    pub activity: Activity,
}

#[derive(Template)]
#[template(path = "console/devices.html")]
struct DevicesPage {
    layout: Layout,
    rows: Vec<DeviceRow>,
    q: String,
    page: usize,
    total_pages: usize,
    total: usize,
    prev_url: Option<String>,
    next_url: Option<String>,
    welcome: bool,
    /// Where devices reach this server, for the commands shown after creating one.
    http_base: String,
    mqtt_host: String,
    mqtt_port: u16,
    /// The tenant's device profiles, for the creation form (administrators only).
    profiles: Vec<ProfileOption>,
}

pub(super) struct ProfileOption {
    pub id: String,
    pub name: String,
    pub provisioning: &'static str,
    pub selected: bool,
}

/// The tenant's profiles as options, `current` selected.
async fn profile_options(
    state: &AppState,
    scope: &thingsafe_store::Scope,
    current: Option<thingsafe_core::model::DeviceProfileId>,
) -> Result<Vec<ProfileOption>, thingsafe_store::StoreError> {
    let profiles = state
        .store
        .device_profiles(scope, &super::admin::everything())
        .await?;
    Ok(profiles
        .data
        .into_iter()
        .map(|p| ProfileOption {
            id: p.id.to_string(),
            provisioning: super::profiles::provisioning_words(p.provision_type),
            selected: current == Some(p.id),
            name: p.name,
        })
        .collect())
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    q: Option<String>,
    /// 1-based.
    page: Option<usize>,
    welcome: Option<String>,
}

fn page_url(q: &str, page: usize) -> String {
    if q.is_empty() {
        format!("/devices?page={page}")
    } else {
        format!("/devices?q={}&page={page}", url_encode(q))
    }
}

pub(super) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Some(refused) = not_for_system_admin(&viewer) {
        return refused;
    }
    let scope = viewer.principal.scope();
    let q = query.q.unwrap_or_default().trim().to_string();
    let page_no = query.page.unwrap_or(1).max(1);
    let request = PageRequest {
        page_size: PAGE_SIZE,
        page: page_no - 1,
        text_search: (!q.is_empty()).then(|| q.clone()),
    };
    let page = match state.store.devices(&scope, None, &request).await {
        Ok(p) => p,
        Err(e) => return error_page(&viewer, e),
    };
    let activity = match state.store.devices_last_activity(&scope).await {
        Ok(a) => a,
        Err(e) => return error_page(&viewer, e),
    };
    let profiles = if viewer.is_tenant_admin() {
        match profile_options(&state, &scope, None).await {
            Ok(p) => p,
            Err(e) => return error_page(&viewer, e),
        }
    } else {
        vec![]
    };
    let rows = page
        .data
        .iter()
        .map(|d| DeviceRow {
            id: d.id.to_string(),
            name: d.name.clone(),
            device_type: d.device_type.clone(),
            label: d.label.clone().unwrap_or_default(),
            activity: Activity::of(activity.get(&d.id).copied()),
        })
        .collect();
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let scheme = if state.settings.public_url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let mqtt_host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
        _ => host.clone(),
    };
    render(&DevicesPage {
        layout: Layout::signed_in("Devices", "devices", &viewer),
        prev_url: (page_no > 1).then(|| page_url(&q, page_no - 1)),
        next_url: page.has_next.then(|| page_url(&q, page_no + 1)),
        rows,
        q,
        page: page_no,
        total_pages: page.total_pages.max(1),
        total: page.total_elements,
        welcome: query.welcome.is_some(),
        http_base: format!("{scheme}://{host}"),
        mqtt_host,
        mqtt_port: state.settings.mqtt_port,
        profiles,
    })
}

pub(super) struct ValueRow {
    pub key: String,
    pub value: String,
    pub ms: TimestampMs,
    pub utc: String,
}

impl ValueRow {
    fn of(p: &Point) -> ValueRow {
        ValueRow {
            key: p.key.clone(),
            value: p.value.as_string(),
            ms: p.ts,
            utc: utc_time(p.ts),
        }
    }

    fn of_attribute(a: &Attribute) -> ValueRow {
        ValueRow {
            key: a.key.clone(),
            value: a.value.as_string(),
            ms: a.last_update_ms,
            utc: utc_time(a.last_update_ms),
        }
    }
}

pub(super) struct CustomerOption {
    pub id: String,
    pub title: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "console/device.html")]
struct DevicePage {
    layout: Layout,
    id: String,
    name: String,
    device_type: String,
    label: String,
    activity: Activity,
    latest: Vec<ValueRow>,
    /// Keys whose latest value is a number: each gets a chart.
    chart_keys: Vec<String>,
    client: Vec<ValueRow>,
    shared: Vec<ValueRow>,
    server: Vec<ValueRow>,
    customers: Vec<CustomerOption>,
    can_edit: bool,
    /// The server attribute `units` (`{"key": "unit"}`) as JSON, for the charts' axes.
    units: String,
    suspension: Option<SuspensionNote>,
    /// The profile the device is in, other than the default: (id, name); administrators.
    profile: Option<(String, String)>,
    /// The tenant's profiles to move the device to (administrators), and the default's id.
    profiles: Vec<ProfileOption>,
    default_profile: String,
}

/// Why a device is refused at connect, shown on its page.
pub(super) struct SuspensionNote {
    /// "This device", "Every device of type x", "The whole tenant".
    what: &'static str,
    reason: String,
    since: super::Time,
    /// Only a device's own suspension is lifted from its page.
    own: bool,
}

fn is_number(v: &Value) -> bool {
    matches!(v, Value::Long(_) | Value::Double(_))
}

pub(super) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = not_for_system_admin(&viewer) {
        return refused;
    }
    let id: DeviceId = match parse_id("device", &id) {
        Ok(id) => id,
        Err(e) => return error_page(&viewer, e),
    };
    let scope = viewer.principal.scope();
    let device = match state.store.device(&scope, id).await {
        Ok(d) => d,
        Err(e) => return error_page(&viewer, e),
    };
    let mut latest = match state.store.device_latest(&device, None).await {
        Ok(l) => l,
        Err(e) => return error_page(&viewer, e),
    };
    latest.sort_by(|a, b| a.key.cmp(&b.key));
    let mut attributes = HashMap::new();
    for s in AttributeScope::ALL {
        match state.store.device_attributes(&device, s, None).await {
            Ok(mut list) => {
                list.sort_by(|a, b| a.key.cmp(&b.key));
                attributes.insert(s, list.iter().map(ValueRow::of_attribute).collect());
            }
            Err(e) => return error_page(&viewer, e),
        }
    }
    let can_edit = viewer.is_tenant_admin();
    let customers = if can_edit {
        let all = PageRequest {
            page_size: PageRequest::MAX_PAGE_SIZE,
            page: 0,
            text_search: None,
        };
        match state.store.customers(&scope, &all).await {
            Ok(p) => p
                .data
                .into_iter()
                .map(|c| CustomerOption {
                    selected: device.customer_id == Some(c.id),
                    id: c.id.to_string(),
                    title: c.title,
                })
                .collect(),
            Err(e) => return error_page(&viewer, e),
        }
    } else {
        vec![]
    };
    let profiles = if can_edit {
        match profile_options(&state, &scope, device.device_profile_id).await {
            Ok(p) => p,
            Err(e) => return error_page(&viewer, e),
        }
    } else {
        vec![]
    };
    let profile = profiles
        .iter()
        .find(|p| p.selected)
        .map(|p| (p.id.clone(), p.name.clone()));
    let default_profile =
        thingsafe_core::model::DeviceProfileId::default_of(device.tenant_id).to_string();
    let newest = latest.iter().map(|p| p.ts).max();
    let units = attributes
        .get(&AttributeScope::Server)
        .and_then(|rows: &Vec<ValueRow>| rows.iter().find(|a| a.key == "units"))
        .and_then(|a| serde_json::from_str::<serde_json::Value>(&a.value).ok())
        .filter(serde_json::Value::is_object)
        .map_or_else(|| "{}".to_string(), |u| u.to_string());
    let suspension = state.store.suspension_of(&device).map(|s| {
        let (what, own) = match s.target {
            thingsafe_store::SuspensionTarget::Device(_) => ("This device", true),
            thingsafe_store::SuspensionTarget::DeviceType(_) => {
                ("Every device of this type", false)
            }
            thingsafe_store::SuspensionTarget::Tenant(_) => ("Every device of the tenant", false),
        };
        SuspensionNote {
            what,
            reason: s.reason,
            since: super::Time(s.since_ms),
            own,
        }
    });
    let Device {
        name,
        device_type,
        label,
        ..
    } = device;
    render(&DevicePage {
        suspension,
        profile,
        profiles,
        default_profile,
        layout: Layout::signed_in(name.clone(), "devices", &viewer),
        id: id.to_string(),
        name,
        device_type,
        label: label.unwrap_or_default(),
        activity: Activity::of(newest),
        chart_keys: latest
            .iter()
            .filter(|p| is_number(&p.value))
            .map(|p| p.key.clone())
            .collect(),
        latest: latest.iter().map(ValueRow::of).collect(),
        client: attributes
            .remove(&AttributeScope::Client)
            .unwrap_or_default(),
        shared: attributes
            .remove(&AttributeScope::Shared)
            .unwrap_or_default(),
        server: attributes
            .remove(&AttributeScope::Server)
            .unwrap_or_default(),
        customers,
        can_edit,
        units,
    })
}

pub(super) struct DashboardCard {
    pub id: String,
    pub name: String,
    pub device_type: String,
    pub activity: Activity,
    pub values: Vec<ValueRow>,
}

impl DashboardCard {
    fn keys(&self) -> String {
        self.values
            .iter()
            .map(|v| v.key.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    cards: Vec<DashboardCard>,
    total: usize,
    online: usize,
}

pub(super) async fn dashboard(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Some(refused) = not_for_system_admin(&viewer) {
        return refused;
    }
    let scope = viewer.principal.scope();
    let request = PageRequest {
        page_size: DASHBOARD_DEVICES,
        page: 0,
        text_search: None,
    };
    let page = match state.store.devices(&scope, None, &request).await {
        Ok(p) => p,
        Err(e) => return error_page(&viewer, e),
    };
    let activity = match state.store.devices_last_activity(&scope).await {
        Ok(a) => a,
        Err(e) => return error_page(&viewer, e),
    };
    let mut cards = Vec::new();
    for device in &page.data {
        let mut latest = match state.store.device_latest(device, None).await {
            Ok(l) => l,
            Err(e) => return error_page(&viewer, e),
        };
        latest.retain(|p| is_number(&p.value));
        latest.sort_by(|a, b| a.key.cmp(&b.key));
        latest.truncate(DASHBOARD_KEYS);
        cards.push(DashboardCard {
            id: device.id.to_string(),
            name: device.name.clone(),
            device_type: device.device_type.clone(),
            activity: Activity::of(activity.get(&device.id).copied()),
            values: latest.iter().map(ValueRow::of).collect(),
        });
    }
    let now = now_ms();
    render(&DashboardPage {
        layout: Layout::signed_in("Dashboard", "dashboard", &viewer),
        online: activity
            .values()
            .filter(|&&ms| now - ms < ONLINE_WITHIN_MS)
            .count(),
        total: page.total_elements,
        cards,
    })
}
