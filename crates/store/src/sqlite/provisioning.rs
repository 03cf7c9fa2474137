//! Device profiles with provisioning (ThingsBoard's `DeviceProvisionServiceImpl`) and device
//! claiming (ThingsBoard's `ClaimDevicesServiceImpl`, device-side "simple" claiming).
//!
//! - A provisioning key and secret are credentials: sealed with the tenant's key, found and
//!   checked through keyed hashes only. The key is unique across the installation, so it
//!   reaches exactly one profile, and only that profile's tenant.
//! - Claiming windows live in memory (like RPC mailboxes): a restart closes them, and the
//!   device opens its window again. The secret key is kept as a keyed hash, never as text.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;

use rusqlite::{OptionalExtension, params};
use thingsafe_core::model::provisioning::{ClaimRequest, ProvisionOutcome, ProvisionRequest};
use thingsafe_core::model::{
    DeviceProfile, DeviceProfileId, PemCertificate, ProvisionType, X509ChainProvisioning,
};
use thingsafe_core::{
    Device, DeviceCredentials, DeviceId, Owner, Page, PageRequest, TenantId, TimestampMs, now_ms,
    validate,
};

use super::rows::{self, DeviceRow, id_text};
use super::{GENERATED_TOKEN_LEN, SqliteStore, insert_device, skip_shredded, whole_tenant};
use crate::{
    CertificateProvisioning, ClaimOutcome, NewDevice, NewDeviceProfile, Result, Scope, StoreError,
};

const COLUMNS: &str = "id, tenant_id, name, provision_type, provision_key, provision_secret, \
     created_ms, x509_pattern, x509_allow_create";

struct ProfileRow {
    id: String,
    tenant_id: String,
    name: Vec<u8>,
    provision_type: String,
    key: Option<Vec<u8>>,
    secret: Option<Vec<u8>>,
    created_ms: i64,
    x509_pattern: Option<Vec<u8>>,
    x509_allow_create: bool,
}

fn read(r: &rusqlite::Row) -> rusqlite::Result<ProfileRow> {
    Ok(ProfileRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        provision_type: r.get(3)?,
        key: r.get(4)?,
        secret: r.get(5)?,
        created_ms: r.get(6)?,
        x509_pattern: r.get(7)?,
        x509_allow_create: r.get(8)?,
    })
}

impl ProfileRow {
    fn open(self, store: &SqliteStore) -> Result<DeviceProfile> {
        let tenant: TenantId = rows::parse_id(&self.tenant_id)?;
        let owner = Owner::Tenant(tenant);
        let opt = |field: &str, sealed: Option<Vec<u8>>| {
            sealed
                .map(|s| rows::open_text(&store.vault, owner, field, &self.id, &s))
                .transpose()
        };
        Ok(DeviceProfile {
            id: rows::parse_id(&self.id)?,
            tenant_id: tenant,
            name: rows::open_text(
                &store.vault,
                owner,
                "device_profile.name",
                &self.id,
                &self.name,
            )?,
            provision_type: ProvisionType::from_str(&self.provision_type)
                .map_err(StoreError::Backend)?,
            provision_device_key: opt("device_profile.provision_key", self.key.clone())?,
            provision_device_secret: opt("device_profile.provision_secret", self.secret.clone())?,
            x509: opt("device_profile.x509_pattern", self.x509_pattern.clone())?.map(
                |certificate_pattern| X509ChainProvisioning {
                    certificate_pattern,
                    allow_create: self.x509_allow_create,
                },
            ),
            created_ms: self.created_ms,
        })
    }
}

impl SqliteStore {
    fn profile_name_index(&self, tenant: TenantId, name: &str) -> Vec<u8> {
        let mut value = tenant.as_uuid().as_bytes().to_vec();
        value.extend_from_slice(name.as_bytes());
        self.vault
            .blind_index("device_profile.name", &value)
            .to_vec()
    }

    fn provision_key_index(&self, key: &str) -> Vec<u8> {
        self.vault
            .blind_index("device_profile.provision_key", key.as_bytes())
            .to_vec()
    }

    /// A provisioning CA's fingerprint: its own hash domain, apart from provisioning keys
    /// (a key chosen to look like a fingerprint reaches no CA profile).
    fn provisioning_ca_index(&self, fingerprint: &str) -> Vec<u8> {
        self.vault
            .blind_index("device_profile.x509_ca", fingerprint.as_bytes())
            .to_vec()
    }

    /// Bound to the key: a secret's hash says nothing about another profile's secret.
    fn provision_secret_index(&self, key: &str, secret: &str) -> Vec<u8> {
        let mut value = (key.len() as u64).to_be_bytes().to_vec();
        value.extend_from_slice(key.as_bytes());
        value.extend_from_slice(secret.as_bytes());
        self.vault
            .blind_index("device_profile.provision_secret", &value)
            .to_vec()
    }

    /// The device of `tenant` named `name`, whoever it is assigned to.
    async fn device_named(&self, tenant: TenantId, name: &str) -> Result<Option<Device>> {
        let index = self.device_name_index(tenant, name);
        let row = self
            .readers
            .read(move |c| {
                Ok(c.query_row(
                    &format!(
                        "SELECT {} FROM device WHERE tenant_id = ?1 AND name_index = ?2",
                        DeviceRow::COLUMNS
                    ),
                    params![tenant.to_string(), index],
                    DeviceRow::read,
                )
                .optional()?)
            })
            .await?;
        match row {
            None => Ok(None),
            Some(row) => skip_shredded(row.open(&self.vault)).transpose(),
        }
    }
}

pub(super) async fn create_profile(
    store: &SqliteStore,
    scope: &Scope,
    profile: NewDeviceProfile,
) -> Result<DeviceProfile> {
    let tenant = whole_tenant(scope)?;
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let mut key = nonempty(profile.provision_device_key);
    let mut secret = nonempty(profile.provision_device_secret);
    match (profile.provision_type, &profile.x509) {
        (ProvisionType::X509CertificateChain, None) => {
            return Err(StoreError::Invalid(
                "provisionType X509_CERTIFICATE_CHAIN needs a certificateRegExPattern".into(),
            ));
        }
        (ProvisionType::X509CertificateChain, Some(_)) => {
            let pem = secret.as_deref().ok_or_else(|| {
                StoreError::Invalid(
                    "provisionType X509_CERTIFICATE_CHAIN needs the CA certificate in PEM as provisionDeviceSecret".into(),
                )
            })?;
            let ca = PemCertificate::parse("provisionDeviceSecret", "the CA's", pem)
                .map_err(StoreError::Invalid)?;
            key = Some(ca.fingerprint);
            secret = Some(ca.pem);
        }
        (other, Some(_)) => {
            return Err(StoreError::Invalid(format!(
                "a certificateRegExPattern belongs to provisionType X509_CERTIFICATE_CHAIN, not {}",
                other.as_str()
            )));
        }
        (ProvisionType::Disabled, None) => {}
        (other, None) => {
            if key.is_none() || secret.is_none() {
                return Err(StoreError::Invalid(format!(
                    "provisionType {} needs a provisionDeviceKey and a provisionDeviceSecret",
                    other.as_str()
                )));
            }
        }
    }
    let x509 = profile.x509;
    let id = DeviceProfileId::random();
    let row = id.to_string();
    let owner = Owner::Tenant(tenant);
    let name_index = store.profile_name_index(tenant, &profile.name);
    let name = store.seal(owner, "device_profile.name", &row, &profile.name)?;
    let key_index = match (&x509, key.as_deref()) {
        (Some(_), Some(fingerprint)) => Some(store.provisioning_ca_index(fingerprint)),
        (None, Some(k)) => Some(store.provision_key_index(k)),
        (_, None) => None,
    };
    // A CA profile has no secret to check: the key-and-secret request never matches it.
    let secret_index = match (&x509, &key, &secret) {
        (None, Some(k), Some(s)) => Some(store.provision_secret_index(k, s)),
        _ => None,
    };
    let pattern = store.seal_opt(
        owner,
        "device_profile.x509_pattern",
        &row,
        x509.as_ref().map(|x| x.certificate_pattern.as_str()),
    )?;
    let allow_create = x509.as_ref().is_some_and(|x| x.allow_create);
    let sealed_key = store.seal_opt(owner, "device_profile.provision_key", &row, key.as_deref())?;
    let sealed_secret = store.seal_opt(
        owner,
        "device_profile.provision_secret",
        &row,
        secret.as_deref(),
    )?;
    let created = now_ms();
    let provision_type = profile.provision_type.as_str();
    let is_ca_profile = x509.is_some();
    store
        .writer
        .write(move |c| {
            c.execute(
                "INSERT INTO device_profile (id, tenant_id, name_index, name, provision_type,
                     key_index, provision_key, secret_index, provision_secret, created_ms,
                     x509_pattern, x509_allow_create)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    row,
                    tenant.to_string(),
                    name_index,
                    name,
                    provision_type,
                    key_index,
                    sealed_key,
                    secret_index,
                    sealed_secret,
                    created,
                    pattern,
                    allow_create
                ],
            )
            .map_err(|e| {
                let on_key = e.to_string().contains("key_index");
                rows::conflict(
                    e,
                    if on_key && is_ca_profile {
                        "this CA certificate is already the provisioning CA of another device profile"
                    } else if on_key {
                        "this provisionDeviceKey is already used by another device profile"
                    } else {
                        "a device profile with this name already exists"
                    },
                )
            })?;
            Ok(())
        })
        .await?;
    Ok(DeviceProfile {
        id,
        tenant_id: tenant,
        name: profile.name,
        provision_type: profile.provision_type,
        provision_device_key: key,
        provision_device_secret: secret,
        x509,
        created_ms: created,
    })
}

pub(super) async fn profile(
    store: &SqliteStore,
    scope: &Scope,
    id: DeviceProfileId,
) -> Result<DeviceProfile> {
    let tenant = scope.tenant()?;
    let row = store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS} FROM device_profile WHERE id = ?1 AND tenant_id = ?2"),
                params![id.to_string(), tenant.to_string()],
                read,
            )
            .optional()?)
        })
        .await?
        .ok_or(StoreError::NotFound("device profile"))?;
    skip_shredded(row.open(store)).unwrap_or(Err(StoreError::NotFound("device profile")))
}

pub(super) async fn profiles(
    store: &SqliteStore,
    scope: &Scope,
    page: &PageRequest,
) -> Result<Page<DeviceProfile>> {
    let tenant = scope.tenant()?;
    let rows = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM device_profile WHERE tenant_id = ?1"
            ))?;
            let rows = stmt
                .query_map([tenant.to_string()], read)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    let mut profiles = rows
        .into_iter()
        .filter_map(|r| skip_shredded(r.open(store)))
        .collect::<Result<Vec<_>>>()?;
    profiles.retain(|p| page.matches(&p.name));
    super::sort_newest_first(&mut profiles, |p| (p.created_ms, p.id.to_string()));
    Ok(page.apply(profiles))
}

/// ThingsBoard's `DELETE /api/deviceProfile/{id}`: refused while devices are in the
/// profile; deleting the row frees its provisioning key (or CA) for any profile.
pub(super) async fn delete_profile(
    store: &SqliteStore,
    scope: &Scope,
    id: DeviceProfileId,
) -> Result<()> {
    let tenant = whole_tenant(scope)?;
    // Opened first for its name, which the refusal says.
    let profile = profile(store, scope, id).await?;
    store
        .writer
        .write(move |c| {
            // Counted and deleted in one writer job: no device joins in between.
            let devices: i64 = c.query_row(
                "SELECT COUNT(*) FROM device WHERE device_profile_id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )?;
            if devices > 0 {
                let (noun, pronoun) = if devices == 1 {
                    ("device", "it")
                } else {
                    ("devices", "them")
                };
                return Err(StoreError::Invalid(format!(
                    "the device profile “{}” is used by {devices} {noun}: move or delete {pronoun} first",
                    profile.name
                )));
            }
            let deleted = c.execute(
                "DELETE FROM device_profile WHERE id = ?1 AND tenant_id = ?2",
                params![id.to_string(), tenant.to_string()],
            )?;
            if deleted == 0 {
                return Err(StoreError::NotFound("device profile"));
            }
            Ok(())
        })
        .await
}

pub(super) async fn set_profile(
    store: &SqliteStore,
    scope: &Scope,
    device: DeviceId,
    profile: Option<DeviceProfileId>,
) -> Result<()> {
    let tenant = whole_tenant(scope)?;
    store
        .writer
        .write(move |c| {
            if let Some(p) = profile {
                let known: bool = c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM device_profile WHERE id = ?1 AND tenant_id = ?2)",
                    params![p.to_string(), tenant.to_string()],
                    |r| r.get(0),
                )?;
                if !known {
                    return Err(StoreError::NotFound("device profile"));
                }
            }
            let changed = c.execute(
                // Saved in the profile it is in, a device stays provisioned (ThingsBoard
                // clients send the profile with every save); moved, it starts afresh.
                "UPDATE device
                 SET provisioned = CASE WHEN device_profile_id IS ?3 THEN provisioned ELSE 0 END,
                     device_profile_id = ?3
                 WHERE id = ?1 AND tenant_id = ?2",
                params![device.to_string(), tenant.to_string(), id_text(profile)],
            )?;
            if changed == 0 {
                return Err(StoreError::NotFound("device"));
            }
            Ok(())
        })
        .await
}

pub(super) async fn profile_of(
    store: &SqliteStore,
    scope: &Scope,
    device: DeviceId,
) -> Result<Option<DeviceProfileId>> {
    let tenant = scope.tenant()?;
    let only = scope.customer();
    let found: Option<Option<String>> = store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                "SELECT device_profile_id FROM device
                 WHERE id = ?1 AND tenant_id = ?2 AND (?3 IS NULL OR customer_id = ?3)",
                params![device.to_string(), tenant.to_string(), id_text(only)],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await?;
    found
        .ok_or(StoreError::NotFound("device"))?
        .as_deref()
        .map(rows::parse_id)
        .transpose()
}

pub(super) async fn provision(
    store: &SqliteStore,
    request: &ProvisionRequest,
) -> Result<ProvisionOutcome> {
    let (key, secret) = (
        &request.provision_device_key,
        &request.provision_device_secret,
    );
    if key.is_empty() || secret.is_empty() {
        return Ok(ProvisionOutcome::NotFound);
    }
    let key_index = store.provision_key_index(key);
    let found = store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {COLUMNS}, secret_index FROM device_profile WHERE key_index = ?1"),
                [key_index],
                |r| {
                    let after_columns = COLUMNS.split(',').count();
                    Ok((read(r)?, r.get::<_, Option<Vec<u8>>>(after_columns)?))
                },
            )
            .optional()?)
        })
        .await?;
    let Some((row, Some(secret_index))) = found else {
        return Ok(ProvisionOutcome::NotFound);
    };
    if secret_index != store.provision_secret_index(key, secret) {
        return Ok(ProvisionOutcome::NotFound);
    }
    let profile = match skip_shredded(row.open(store)) {
        None => return Ok(ProvisionOutcome::NotFound),
        Some(p) => p?,
    };
    match profile.provision_type {
        ProvisionType::Disabled | ProvisionType::X509CertificateChain => {
            Ok(ProvisionOutcome::NotFound)
        }
        ProvisionType::AllowCreateNewDevices => create_provisioned(store, &profile, request).await,
        ProvisionType::CheckPreProvisionedDevices => {
            pre_provisioned(store, &profile, request).await
        }
    }
}

/// ALLOW_CREATE_NEW_DEVICES: a new device of the profile's tenant; a taken name (or token)
/// is a failure, as in ThingsBoard.
async fn create_provisioned(
    store: &SqliteStore,
    profile: &DeviceProfile,
    request: &ProvisionRequest,
) -> Result<ProvisionOutcome> {
    let name = match &request.device_name {
        Some(n) => match validate::name("deviceName", n, 255) {
            Ok(n) => n,
            Err(_) => return Ok(ProvisionOutcome::Failure),
        },
        None => thingsafe_vault::random_alphanumeric(GENERATED_TOKEN_LEN),
    };
    let token = match &request.token {
        Some(t) => match validate::access_token(t) {
            Ok(t) => t,
            Err(_) => return Ok(ProvisionOutcome::Failure),
        },
        None => thingsafe_vault::random_alphanumeric(GENERATED_TOKEN_LEN),
    };
    let tenant = profile.tenant_id;
    let new = NewDevice {
        name,
        device_type: profile.name.clone(),
        label: None,
        credentials: DeviceCredentials::AccessToken(token.clone()),
    };
    let Some((id, _)) = insert_provisioned(store, profile, &new).await? else {
        tracing::info!(profile = %profile.id, tenant = %tenant, "provisioning refused: the device name or token is taken");
        return Ok(ProvisionOutcome::Failure);
    };
    tracing::info!(device = %id, profile = %profile.id, tenant = %tenant, "device created by provisioning");
    Ok(ProvisionOutcome::Success(token))
}

/// Creates `new` in `profile`, provisioned; `None` when its name or credentials are taken.
async fn insert_provisioned(
    store: &SqliteStore,
    profile: &DeviceProfile,
    new: &NewDevice,
) -> Result<Option<(DeviceId, TimestampMs)>> {
    let sealed = store.sealed_device(profile.tenant_id, new)?;
    let (id, profile_id, created_ms) = (sealed.id, profile.id, sealed.created_ms);
    let created = store
        .writer
        .write(move |c| {
            match insert_device(c, &sealed, None, false, None) {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => return Ok(false),
                Err(e) => return Err(e),
            }
            c.execute(
                "UPDATE device SET device_profile_id = ?2, provisioned = 1 WHERE id = ?1",
                params![id.to_string(), profile_id.to_string()],
            )?;
            Ok(true)
        })
        .await?;
    Ok(created.then_some((id, created_ms)))
}

/// CHECK_PRE_PROVISIONED_DEVICES: the credentials of a device of the profile that has not
/// fetched them yet.
async fn pre_provisioned(
    store: &SqliteStore,
    profile: &DeviceProfile,
    request: &ProvisionRequest,
) -> Result<ProvisionOutcome> {
    let Some(name) = &request.device_name else {
        return Ok(ProvisionOutcome::Failure);
    };
    let tenant = profile.tenant_id;
    let (index, profile_id) = (store.device_name_index(tenant, name), profile.id);
    // Marked provisioned and its credentials read in one writer job: two requests for
    // the same device cannot both succeed.
    let taken: Option<(String, Vec<u8>)> = store
        .writer
        .write(move |c| {
            Ok(c.query_row(
                "UPDATE device SET provisioned = 1
                 WHERE tenant_id = ?1 AND name_index = ?2 AND device_profile_id = ?3
                   AND provisioned = 0
                 RETURNING id, (SELECT credentials FROM device_credentials WHERE device_id = device.id)",
                params![tenant.to_string(), index, profile_id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await?;
    let Some((id, sealed)) = taken else {
        tracing::info!(profile = %profile.id, tenant = %tenant, "provisioning refused: no device of the profile waits for its credentials under this name");
        return Ok(ProvisionOutcome::Failure);
    };
    let token = rows::open_text(
        &store.vault,
        Owner::Tenant(tenant),
        "device.credentials",
        &id,
        &sealed,
    )?;
    tracing::info!(device = %id, profile = %profile.id, tenant = %tenant, "pre-provisioned device fetched its credentials");
    Ok(ProvisionOutcome::Success(token))
}

// --- X.509 provisioning ---

pub(super) async fn certificate_chain_profile(
    store: &SqliteStore,
    fingerprints: &[String],
) -> Result<Option<DeviceProfile>> {
    let indexes: Vec<Vec<u8>> = fingerprints
        .iter()
        .map(|f| store.provisioning_ca_index(f))
        .collect();
    let found = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM device_profile
                 WHERE key_index = ?1 AND provision_type = 'X509_CERTIFICATE_CHAIN'"
            ))?;
            for index in indexes {
                if let Some(row) = stmt.query_row([index], read).optional()? {
                    return Ok(Some(row));
                }
            }
            Ok(None)
        })
        .await?;
    match found {
        None => Ok(None),
        Some(row) => skip_shredded(row.open(store)).transpose(),
    }
}

pub(super) async fn provision_by_certificate(
    store: &SqliteStore,
    profile: &DeviceProfile,
    name: &str,
    certificate: DeviceCredentials,
) -> Result<CertificateProvisioning> {
    let Some(x509) = &profile.x509 else {
        return Ok(CertificateProvisioning::Refused(
            "the profile does not provision by certificate",
        ));
    };
    let tenant = profile.tenant_id;
    if let Some(existing) = store.device_named(tenant, name).await? {
        return bind_certificate(store, profile, existing, certificate).await;
    }
    if !x509.allow_create {
        return Ok(CertificateProvisioning::Refused(
            "no device of the profile has this name, and the profile does not create devices",
        ));
    }
    let new = NewDevice {
        name: name.to_string(),
        device_type: profile.name.clone(),
        label: None,
        credentials: certificate.clone(),
    };
    if let Some((id, created_ms)) = insert_provisioned(store, profile, &new).await? {
        tracing::info!(device = %id, profile = %profile.id, tenant = %tenant, "device created by its certificate chain");
        return Ok(CertificateProvisioning::Created(Device {
            id,
            tenant_id: tenant,
            customer_id: None,
            name: new.name,
            device_type: new.device_type,
            label: None,
            created_ms,
            gateway: false,
            gateway_id: None,
            device_profile_id: Some(profile.id),
        }));
    }
    // The name was taken meanwhile (the same device connecting twice at once), or the
    // certificate is another device's.
    match store.device_named(tenant, name).await? {
        Some(existing) => bind_certificate(store, profile, existing, certificate).await,
        None => Ok(CertificateProvisioning::Refused(
            "the certificate is the credentials of another device",
        )),
    }
}

/// The profile's device named by the certificate: it takes the certificate if it still
/// has the access token it was created with and has not been provisioned; a device
/// that holds this very certificate (a concurrent first connection) is simply found.
async fn bind_certificate(
    store: &SqliteStore,
    profile: &DeviceProfile,
    device: Device,
    certificate: DeviceCredentials,
) -> Result<CertificateProvisioning> {
    if let DeviceCredentials::X509Certificate { fingerprint, .. } = &certificate
        && let Some(holder) = crate::Store::device_by_certificate(store, fingerprint).await?
        && holder.id == device.id
    {
        return Ok(CertificateProvisioning::Bound(holder));
    }
    if device.device_profile_id != Some(profile.id) {
        return Ok(CertificateProvisioning::Refused(
            "a device of this name exists outside the profile",
        ));
    }
    let (kind, index, secret) = store.credentials_row(&certificate);
    let sealed = store.seal(
        Owner::Tenant(device.tenant_id),
        "device.credentials",
        &device.id.to_string(),
        secret,
    )?;
    let (id, profile_id) = (device.id, profile.id);
    let bound = store
        .writer
        .write(move |c| {
            let waiting = c.execute(
                "UPDATE device SET provisioned = 1
                 WHERE id = ?1 AND device_profile_id = ?2 AND provisioned = 0
                   AND EXISTS (SELECT 1 FROM device_credentials
                               WHERE device_id = ?1 AND credentials_type = 'ACCESS_TOKEN')",
                params![id.to_string(), profile_id.to_string()],
            )?;
            if waiting == 0 {
                return Ok(false);
            }
            c.execute(
                "UPDATE device_credentials
                 SET credentials_type = ?2, token_index = ?3, credentials = ?4
                 WHERE device_id = ?1",
                params![id.to_string(), kind, index, sealed],
            )
            .map_err(|e| {
                rows::conflict(
                    e,
                    "this certificate is already the credentials of another device",
                )
            })?;
            Ok(true)
        })
        .await;
    match bound {
        Ok(true) => {
            tracing::info!(device = %device.id, profile = %profile.id, "device created beforehand took its certificate");
            Ok(CertificateProvisioning::Bound(device))
        }
        Ok(false) => Ok(CertificateProvisioning::Refused(
            "the profile's device of this name has its credentials already",
        )),
        Err(StoreError::Conflict(_)) => Ok(CertificateProvisioning::Refused(
            "the certificate is the credentials of another device",
        )),
        Err(e) => Err(e),
    }
}

// --- claiming ---

struct Claim {
    key_hash: [u8; 32],
    expires_ms: TimestampMs,
}

/// Open claiming windows by device, kept in memory (like RPC mailboxes): a restart
/// closes them.
#[derive(Default)]
pub(crate) struct Claims(Mutex<HashMap<DeviceId, Claim>>);

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Claim>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn claim_hash(store: &SqliteStore, device: DeviceId, secret_key: &str) -> [u8; 32] {
    let mut value = device.as_uuid().as_bytes().to_vec();
    value.extend_from_slice(secret_key.as_bytes());
    store.vault.blind_index("device.claim", &value)
}

pub(super) async fn open_claim(
    store: &SqliteStore,
    device: &Device,
    request: &ClaimRequest,
) -> Result<bool> {
    // The device as it is now: it may have been assigned since it connected.
    let id = device.id;
    let assigned: Option<Option<String>> = store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                "SELECT customer_id FROM device WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await?;
    match assigned {
        None => return Err(StoreError::NotFound("device")),
        Some(Some(_)) => return Ok(false),
        Some(None) => {}
    }
    let now = now_ms();
    let claim = Claim {
        key_hash: claim_hash(store, id, &request.secret_key),
        expires_ms: now.saturating_add(request.duration_ms),
    };
    let mut claims = store.claims.lock();
    claims.retain(|_, c| c.expires_ms >= now);
    // ThingsBoard keeps the first open window (`putIfAbsent`) until it closes.
    claims.entry(id).or_insert(claim);
    Ok(true)
}

pub(super) async fn claim(
    store: &SqliteStore,
    scope: &Scope,
    name: &str,
    secret_key: &str,
) -> Result<ClaimOutcome> {
    let Scope::Customer { tenant, customer } = *scope else {
        return Err(StoreError::Forbidden(
            "only customer users claim devices".into(),
        ));
    };
    let device = store
        .device_named(tenant, name)
        .await?
        .ok_or(StoreError::NotFound("device"))?;
    let window = store.claims.lock().remove(&device.id);
    let Some(window) = window else {
        return Ok(match device.customer_id {
            None => ClaimOutcome::Failure,
            Some(_) => ClaimOutcome::Claimed,
        });
    };
    if now_ms() > window.expires_ms || window.key_hash != claim_hash(store, device.id, secret_key) {
        tracing::info!(device = %device.id, "claim refused: the window expired or the secret key is wrong");
        return Ok(ClaimOutcome::Failure);
    }
    let id = device.id;
    let assigned = store
        .writer
        .write(move |c| {
            Ok(c.execute(
                "UPDATE device SET customer_id = ?3
                 WHERE id = ?1 AND tenant_id = ?2 AND customer_id IS NULL",
                params![id.to_string(), tenant.to_string(), customer.to_string()],
            )?)
        })
        .await?;
    if assigned == 0 {
        return Ok(ClaimOutcome::Claimed);
    }
    tracing::info!(device = %id, customer = %customer, "device claimed");
    Ok(ClaimOutcome::Success(
        super::Store::device(store, scope, id).await?,
    ))
}

pub(super) async fn reclaim(store: &SqliteStore, scope: &Scope, name: &str) -> Result<Device> {
    let tenant = scope.tenant()?;
    let device = store
        .device_named(tenant, name)
        .await?
        .filter(|d| scope.customer().is_none() || d.customer_id == scope.customer())
        .ok_or(StoreError::NotFound("device"))?;
    store.claims.lock().remove(&device.id);
    let id = device.id;
    store
        .writer
        .write(move |c| {
            c.execute(
                "UPDATE device SET customer_id = NULL WHERE id = ?1 AND tenant_id = ?2",
                params![id.to_string(), tenant.to_string()],
            )?;
            Ok(())
        })
        .await?;
    tracing::info!(device = %id, "device reclaimed (unassigned)");
    super::Store::device(store, &Scope::Tenant(tenant), id).await
}
