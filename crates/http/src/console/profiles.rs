//! Device profiles (tenant administrators): the list with the create form, and one
//! profile's page with its settings, its devices and deleting it. Changes go through
//! `/api/deviceProfile` like any API client's.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use thingsafe_core::model::{DeviceProfile, DeviceProfileId, ProvisionType};

use super::admin::everything;
use super::devices::{Activity, DeviceRow};
use super::{Layout, Viewer, error_page, not_for_role, render};
use crate::AppState;
use crate::extract::parse_id;

fn admins_only(viewer: &Viewer) -> Response {
    not_for_role(
        viewer,
        "Only a tenant administrator manages device profiles: how devices are provisioned.",
    )
}

/// How a profile's devices get their credentials, in words.
pub(super) fn provisioning_words(kind: ProvisionType) -> &'static str {
    match kind {
        ProvisionType::AllowCreateNewDevices => "Devices create themselves with a key and secret",
        ProvisionType::CheckPreProvisionedDevices => {
            "Devices created beforehand fetch their credentials"
        }
        ProvisionType::X509CertificateChain => "Devices with a certificate signed by your CA",
        ProvisionType::Disabled => "No provisioning",
    }
}

/// `ab12...` as openssl prints fingerprints: `AB:12:...`.
fn colon_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

pub(super) struct ProfileRow {
    pub id: String,
    pub name: String,
    pub provisioning: &'static str,
    pub devices: usize,
    pub default: bool,
}

#[derive(Template)]
#[template(path = "console/device_profiles.html")]
struct ProfilesPage {
    layout: Layout,
    rows: Vec<ProfileRow>,
}

pub(super) async fn list(State(state): State<AppState>, viewer: Viewer) -> Response {
    if !viewer.is_tenant_admin() {
        return admins_only(&viewer);
    }
    let scope = viewer.principal.scope();
    let tenant = match scope.tenant() {
        Ok(t) => t,
        Err(e) => return error_page(&viewer, e),
    };
    let all = everything();
    let (profiles, devices) = match tokio::try_join!(
        state.store.device_profiles(&scope, &all),
        state.store.devices(&scope, None, &all),
    ) {
        Ok(x) => x,
        Err(e) => return error_page(&viewer, e),
    };
    let mut count: HashMap<Option<DeviceProfileId>, usize> = HashMap::new();
    for d in &devices.data {
        *count.entry(d.device_profile_id).or_default() += 1;
    }
    let default = DeviceProfile::tenant_default(tenant);
    let mut rows: Vec<ProfileRow> = profiles
        .data
        .iter()
        .map(|p| ProfileRow {
            id: p.id.to_string(),
            name: p.name.clone(),
            provisioning: provisioning_words(p.provision_type),
            devices: count.get(&Some(p.id)).copied().unwrap_or(0),
            default: false,
        })
        .collect();
    rows.insert(
        0,
        ProfileRow {
            id: default.id.to_string(),
            name: default.name,
            provisioning: provisioning_words(default.provision_type),
            devices: count.get(&None).copied().unwrap_or(0),
            default: true,
        },
    );
    render(&ProfilesPage {
        layout: Layout::signed_in("Device profiles", "profiles", &viewer),
        rows,
    })
}

#[derive(Template)]
#[template(path = "console/device_profile.html")]
struct ProfilePage {
    layout: Layout,
    id: String,
    name: String,
    default: bool,
    kind: &'static str,
    provisioning: &'static str,
    /// The provisioning key (key-and-secret profiles).
    key: Option<String>,
    has_secret: bool,
    /// X.509 profiles: the CA's SHA-256 (`AB:CD:...`), its PEM, the pattern, creation.
    ca_fingerprint: Option<String>,
    ca_pem: Option<String>,
    pattern: Option<String>,
    allow_create: bool,
    devices: Vec<DeviceRow>,
}

pub(super) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    if !viewer.is_tenant_admin() {
        return admins_only(&viewer);
    }
    let id: DeviceProfileId = match parse_id("device profile", &id) {
        Ok(id) => id,
        Err(e) => return error_page(&viewer, e),
    };
    let scope = viewer.principal.scope();
    let tenant = match scope.tenant() {
        Ok(t) => t,
        Err(e) => return error_page(&viewer, e),
    };
    let default = id == DeviceProfileId::default_of(tenant);
    let profile = if default {
        DeviceProfile::tenant_default(tenant)
    } else {
        match state.store.device_profile(&scope, id).await {
            Ok(p) => p,
            Err(e) => return error_page(&viewer, e),
        }
    };
    let all = everything();
    let (devices, activity) = match tokio::try_join!(
        state.store.devices(&scope, None, &all),
        state.store.devices_last_activity(&scope),
    ) {
        Ok(x) => x,
        Err(e) => return error_page(&viewer, e),
    };
    let in_profile = (!default).then_some(profile.id);
    let devices = devices
        .data
        .iter()
        .filter(|d| d.device_profile_id == in_profile)
        .map(|d| DeviceRow {
            id: d.id.to_string(),
            name: d.name.clone(),
            device_type: d.device_type.clone(),
            label: d.label.clone().unwrap_or_default(),
            activity: Activity::of(activity.get(&d.id).copied()),
        })
        .collect();
    let x509 = profile.provision_type == ProvisionType::X509CertificateChain;
    render(&ProfilePage {
        layout: Layout::signed_in(profile.name.clone(), "profiles", &viewer),
        id: profile.id.to_string(),
        default,
        kind: profile.provision_type.as_str(),
        provisioning: provisioning_words(profile.provision_type),
        key: (!x509)
            .then(|| profile.provision_device_key.clone())
            .flatten(),
        has_secret: !x509 && profile.provision_device_secret.is_some(),
        ca_fingerprint: x509
            .then(|| profile.provision_device_key.as_deref().map(colon_hex))
            .flatten(),
        ca_pem: x509
            .then(|| profile.provision_device_secret.clone())
            .flatten(),
        pattern: profile.x509.as_ref().map(|x| x.certificate_pattern.clone()),
        allow_create: profile.x509.as_ref().is_some_and(|x| x.allow_create),
        name: profile.name,
        devices,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_are_shown_as_openssl_prints_them() {
        assert_eq!(super::colon_hex("ab12cd"), "AB:12:CD");
    }
}
