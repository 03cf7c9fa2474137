//! Devices known by the certificate they present on MQTT over TLS (ThingsBoard's
//! `X509_CERTIFICATE` and `X509_CERTIFICATE_CHAIN`).
//!
//! First the device whose credentials are the certificate itself. Otherwise, if a
//! certificate the client sent above its own is a device profile's provisioning CA, and
//! the chain leads to it by valid signatures (`thingsafe_tls::verify_device_chain`), the
//! profile's pattern takes the device's name from the certificate's Common Name: the
//! profile's device of that name created beforehand takes the certificate as its
//! credentials, or, if the profile allows, the device is created with it. Anything else
//! leaves the certificate no one's: the access token decides, as without a certificate.

use thingsafe_core::model::{DeviceProfile, PemCertificate, sha256_hex};
use thingsafe_core::{Device, DeviceCredentials, DeviceId, now_ms};
use thingsafe_store::{CertificateProvisioning, Store, StoreError};

/// What a TLS client presented.
#[derive(Clone)]
pub struct ClientCertificate {
    /// SHA-256 of the client's own certificate, lower-case hex.
    pub fingerprint: String,
    /// The certificates as sent, the client's own first (DER).
    pub chain: Vec<Vec<u8>>,
}

impl ClientCertificate {
    pub fn new(chain: Vec<Vec<u8>>) -> Option<ClientCertificate> {
        Some(ClientCertificate {
            fingerprint: sha256_hex(chain.first()?),
            chain,
        })
    }
}

pub(crate) async fn device_of(
    store: &dyn Store,
    certificate: &ClientCertificate,
) -> Result<Option<Device>, StoreError> {
    if let Some(device) = store
        .device_by_certificate(&certificate.fingerprint)
        .await?
    {
        return Ok(Some(device));
    }
    let above: Vec<String> = certificate.chain[1..]
        .iter()
        .map(|der| sha256_hex(der))
        .collect();
    if above.is_empty() {
        return Ok(None);
    }
    let Some(profile) = store.certificate_chain_profile(&above).await? else {
        return Ok(None);
    };
    match provisioned(store, &profile, certificate).await? {
        Ok(device) => Ok(Some(device)),
        Err(why) => {
            metrics::counter!("thingsafe_mqtt_certificate_chains_total", "outcome" => "refused")
                .increment(1);
            tracing::info!(profile = %profile.id, reason = why, "a certificate chain to a provisioning CA was refused");
            Ok(None)
        }
    }
}

/// The device `profile` gives the certificate, or why none.
async fn provisioned(
    store: &dyn Store,
    profile: &DeviceProfile,
    certificate: &ClientCertificate,
) -> Result<Result<Device, String>, StoreError> {
    let (Some(x509), Some(ca_pem)) = (&profile.x509, &profile.provision_device_secret) else {
        return Ok(Err("the profile has no provisioning CA".into()));
    };
    let ca = match PemCertificate::parse("provisionDeviceSecret", "the CA's", ca_pem) {
        Ok(ca) => ca,
        Err(e) => return Ok(Err(e)),
    };
    let verified =
        match thingsafe_tls::verify_device_chain(&certificate.chain, &ca.der, now_ms() / 1000) {
            Ok(v) => v,
            Err(why) => return Ok(Err(why)),
        };
    let Some(name) = x509.device_name(&verified.common_name) else {
        return Ok(Err(
            "the profile's certificateRegExPattern finds no device name in the certificate's Common Name"
                .into(),
        ));
    };
    // A suspended device type gains no devices.
    let would_be = Device {
        id: DeviceId::random(),
        tenant_id: profile.tenant_id,
        customer_id: None,
        name: name.clone(),
        device_type: profile.name.clone(),
        label: None,
        created_ms: now_ms(),
        gateway: false,
        gateway_id: None,
        device_profile_id: Some(profile.id),
    };
    if store.suspension_of(&would_be).is_some() {
        return Ok(Err("the profile's device type is suspended".into()));
    }
    let own = PemCertificate::from_der(&certificate.chain[0]);
    let credentials = DeviceCredentials::X509Certificate {
        fingerprint: own.fingerprint,
        pem: own.pem,
    };
    Ok(
        match store
            .provision_by_certificate(profile, &name, credentials)
            .await?
        {
            CertificateProvisioning::Created(device) => {
                metrics::counter!("thingsafe_mqtt_certificate_chains_total", "outcome" => "created")
                    .increment(1);
                Ok(device)
            }
            CertificateProvisioning::Bound(device) => {
                metrics::counter!("thingsafe_mqtt_certificate_chains_total", "outcome" => "bound")
                    .increment(1);
                Ok(device)
            }
            CertificateProvisioning::Refused(why) => Err(why.to_string()),
        },
    )
}
