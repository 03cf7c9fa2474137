//! Tenant administration pages (customers, users, device assignment) and the profile
//! (its privacy center's records are read in privacy_center.rs).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use thingsafe_core::{Authority, CustomerId, PageRequest, User};

use super::privacy_center::PrivacyCenter;
use super::{Layout, Viewer, display_name, error_page, not_for_role, render};
use crate::AppState;
use crate::extract::parse_id;

/// A page as large as the store gives: the console's lists show everything in scope.
pub(super) fn everything() -> PageRequest {
    PageRequest {
        page_size: PageRequest::MAX_PAGE_SIZE,
        page: 0,
        text_search: None,
    }
}

fn admins_only(viewer: &Viewer) -> Response {
    not_for_role(
        viewer,
        "Only a tenant administrator manages customers and users.",
    )
}

pub(super) struct CustomerRow {
    pub id: String,
    pub title: String,
    pub devices: usize,
    pub users: usize,
}

#[derive(Template)]
#[template(path = "console/customers.html")]
struct CustomersPage {
    layout: Layout,
    rows: Vec<CustomerRow>,
}

pub(super) async fn customers(State(state): State<AppState>, viewer: Viewer) -> Response {
    if !viewer.is_tenant_admin() {
        return admins_only(&viewer);
    }
    let scope = viewer.principal.scope();
    let all = everything();
    let (customers, devices, users) = match tokio::try_join!(
        state.store.customers(&scope, &all),
        state.store.devices(&scope, None, &all),
        state.store.users(&scope, None, &all),
    ) {
        Ok(x) => x,
        Err(e) => return error_page(&viewer, e),
    };
    let mut device_count: HashMap<CustomerId, usize> = HashMap::new();
    for c in devices.data.iter().filter_map(|d| d.customer_id) {
        *device_count.entry(c).or_default() += 1;
    }
    let mut user_count: HashMap<CustomerId, usize> = HashMap::new();
    for c in users.data.iter().filter_map(|u| u.customer_id) {
        *user_count.entry(c).or_default() += 1;
    }
    let rows = customers
        .data
        .into_iter()
        .map(|c| CustomerRow {
            id: c.id.to_string(),
            devices: device_count.get(&c.id).copied().unwrap_or(0),
            users: user_count.get(&c.id).copied().unwrap_or(0),
            title: c.title,
        })
        .collect();
    render(&CustomersPage {
        layout: Layout::signed_in("Customers", "customers", &viewer),
        rows,
    })
}

pub(super) struct UserRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub activated: bool,
    pub is_me: bool,
}

impl UserRow {
    fn of(user: &User, me: &User) -> UserRow {
        UserRow {
            id: user.id.to_string(),
            name: display_name(user),
            email: user.email.clone(),
            role: match user.authority {
                Authority::TenantAdmin => "Tenant administrator",
                Authority::CustomerUser => "Customer user",
                Authority::SysAdmin => "System administrator",
            },
            activated: user.activated,
            is_me: user.id == me.id,
        }
    }
}

pub(super) struct DeviceOption {
    pub id: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "console/customer.html")]
struct CustomerPage {
    layout: Layout,
    id: String,
    title: String,
    users: Vec<UserRow>,
    devices: Vec<DeviceOption>,
    /// Devices of the tenant not assigned to any customer.
    unassigned: Vec<DeviceOption>,
}

pub(super) async fn customer(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    if !viewer.is_tenant_admin() {
        return admins_only(&viewer);
    }
    let id: CustomerId = match parse_id("customer", &id) {
        Ok(id) => id,
        Err(e) => return error_page(&viewer, e),
    };
    let scope = viewer.principal.scope();
    let all = everything();
    let (customer, users, devices) = match tokio::try_join!(
        state.store.customer(&scope, id),
        state.store.users(&scope, Some(id), &all),
        state.store.devices(&scope, None, &all),
    ) {
        Ok(x) => x,
        Err(e) => return error_page(&viewer, e),
    };
    let option = |d: &thingsafe_core::Device| DeviceOption {
        id: d.id.to_string(),
        name: d.name.clone(),
    };
    render(&CustomerPage {
        layout: Layout::signed_in(customer.title.clone(), "customers", &viewer),
        id: id.to_string(),
        title: customer.title,
        users: users
            .data
            .iter()
            .map(|u| UserRow::of(u, &viewer.principal.user))
            .collect(),
        devices: devices
            .data
            .iter()
            .filter(|d| d.customer_id == Some(id))
            .map(option)
            .collect(),
        unassigned: devices
            .data
            .iter()
            .filter(|d| d.customer_id.is_none())
            .map(option)
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    layout: Layout,
    rows: Vec<UserRow>,
}

pub(super) async fn users(State(state): State<AppState>, viewer: Viewer) -> Response {
    if !viewer.is_tenant_admin() {
        return admins_only(&viewer);
    }
    let scope = viewer.principal.scope();
    let users = match state.store.users(&scope, None, &everything()).await {
        Ok(u) => u,
        Err(e) => return error_page(&viewer, e),
    };
    render(&UsersPage {
        layout: Layout::signed_in("Users", "users", &viewer),
        rows: users
            .data
            .iter()
            .map(|u| UserRow::of(u, &viewer.principal.user))
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "console/profile.html")]
struct ProfilePage {
    layout: Layout,
    user: UserRow,
    member_since: super::Time,
    accepted_policy: Option<u32>,
    current_policy: u32,
    /// A newer policy is in force than the one accepted.
    policy_outdated: bool,
    /// Applications holding OAuth2 grants to the person's data.
    applications: Vec<ApplicationRow>,
    center: PrivacyCenter,
    first_name: String,
    last_name: String,
    /// Two-factor sign-in (TOTP) is on.
    two_factor: bool,
}

pub(super) struct ApplicationRow {
    client_id: String,
    name: String,
    scopes: Vec<String>,
    since: super::Time,
}

pub(super) async fn profile(State(state): State<AppState>, viewer: Viewer) -> Response {
    let me = &viewer.principal.user;
    let accepted_policy = match state.store.accepted_policy_version(me.id).await {
        Ok(v) => v,
        Err(e) => return error_page(&viewer, e),
    };
    let applications = match crate::oauth2::grants_of(&state, me.id).await {
        Ok(grants) => grants
            .into_iter()
            .map(|g| ApplicationRow {
                client_id: g.client_id,
                name: g.client_name,
                scopes: g.scopes.iter().map(|s| s.describe().to_string()).collect(),
                since: super::Time(g.since_ms),
            })
            .collect(),
        Err(e) => return error_page(&viewer, e),
    };
    let center = match PrivacyCenter::of(&state, me).await {
        Ok(c) => c,
        Err(e) => return error_page(&viewer, e),
    };
    let two_factor = match state.store.totp(me.id).await {
        Ok(t) => t.is_some_and(|t| t.enabled),
        Err(e) => return error_page(&viewer, e),
    };
    render(&ProfilePage {
        two_factor,
        center,
        first_name: me.first_name.clone().unwrap_or_default(),
        last_name: me.last_name.clone().unwrap_or_default(),
        layout: Layout::signed_in("Profile and privacy", "profile", &viewer),
        applications,
        user: UserRow::of(me, me),
        member_since: super::Time(me.created_ms),
        accepted_policy,
        current_policy: state.policy.version.version,
        policy_outdated: accepted_policy.is_some_and(|v| v != state.policy.version.version),
    })
}

pub(super) struct TenantRow {
    pub id: String,
    pub title: String,
    pub since: super::Time,
    /// Why the tenant is suspended, and since when, if it is.
    pub suspended: Option<(String, super::Time)>,
}

#[derive(Template)]
#[template(path = "console/tenants.html")]
struct TenantsPage {
    layout: Layout,
    rows: Vec<TenantRow>,
}

/// The system administrator's first page: the installation's tenants, whether each is
/// suspended, and the way to suspend or lift it.
pub(super) async fn tenants(State(state): State<AppState>, viewer: Viewer) -> Response {
    if !viewer.is_system_admin() {
        return not_for_role(
            &viewer,
            "Only the system administrator manages the installation's tenants.",
        );
    }
    let scope = viewer.principal.scope();
    let all = everything();
    let (tenants, suspensions) = match tokio::try_join!(
        state.store.tenants(&scope, &all),
        state.store.suspensions(&scope),
    ) {
        Ok(x) => x,
        Err(e) => return error_page(&viewer, e),
    };
    let rows = tenants
        .data
        .into_iter()
        .map(|t| TenantRow {
            id: t.id.to_string(),
            suspended: suspensions
                .iter()
                .find(|s| s.target == thingsafe_store::SuspensionTarget::Tenant(t.id))
                .map(|s| (s.reason.clone(), super::Time(s.since_ms))),
            title: t.title,
            since: super::Time(t.created_ms),
        })
        .collect();
    render(&TenantsPage {
        layout: Layout::signed_in("Tenants", "tenants", &viewer),
        rows,
    })
}
