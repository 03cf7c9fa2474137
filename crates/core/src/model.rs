//! Entities as the rest of the platform sees them: opened (plaintext) and typed.
//! How they are sealed at rest is the store's business; how they look on the wire is the
//! HTTP crate's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::TimestampMs;
use crate::ids::{CustomerId, DeviceId, TenantId, UserId};

/// ThingsBoard's roles.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Authority {
    SysAdmin,
    TenantAdmin,
    CustomerUser,
}

impl Authority {
    pub fn as_str(&self) -> &'static str {
        match self {
            Authority::SysAdmin => "SYS_ADMIN",
            Authority::TenantAdmin => "TENANT_ADMIN",
            Authority::CustomerUser => "CUSTOMER_USER",
        }
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Authority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "SYS_ADMIN" => Ok(Authority::SysAdmin),
            "TENANT_ADMIN" => Ok(Authority::TenantAdmin),
            "CUSTOMER_USER" => Ok(Authority::CustomerUser),
            other => Err(format!(
                "unknown authority {other:?}: expected SYS_ADMIN, TENANT_ADMIN or CUSTOMER_USER"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub id: TenantId,
    pub title: String,
    pub created_ms: TimestampMs,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Customer {
    pub id: CustomerId,
    pub tenant_id: TenantId,
    pub title: String,
    pub created_ms: TimestampMs,
}

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    /// `None` only for system administrators.
    pub tenant_id: Option<TenantId>,
    /// `Some` only for customer users.
    pub customer_id: Option<CustomerId>,
    pub authority: Authority,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub birth_date: Option<time::Date>,
    /// False until the user has set a password (activation).
    pub activated: bool,
    pub created_ms: TimestampMs,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub id: DeviceId,
    pub tenant_id: TenantId,
    pub customer_id: Option<CustomerId>,
    pub name: String,
    pub device_type: String,
    pub label: Option<String>,
    pub created_ms: TimestampMs,
    /// A gateway speaks for its sub-devices over ThingsBoard's gateway API
    /// (`additionalInfo.gateway` in ThingsBoard's JSON).
    pub gateway: bool,
    /// The gateway that created this sub-device, the only one that may reach it.
    pub gateway_id: Option<DeviceId>,
    /// The device profile it was put in; `None`: its tenant's default profile
    /// ([`DeviceProfileId::default_of`]).
    pub device_profile_id: Option<DeviceProfileId>,
}

impl Device {
    /// The profile the device belongs to: its own, else its tenant's default one, as every
    /// ThingsBoard device has a profile.
    pub fn profile_id(&self) -> DeviceProfileId {
        self.device_profile_id
            .unwrap_or_else(|| DeviceProfileId::default_of(self.tenant_id))
    }
}

impl Device {
    /// Whose key seals the device's data: the customer it is assigned to, else its tenant.
    pub fn data_owner(&self) -> crate::Owner {
        match self.customer_id {
            Some(c) => crate::Owner::Customer(c),
            None => crate::Owner::Tenant(self.tenant_id),
        }
    }
}

/// ThingsBoard's attribute scopes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AttributeScope {
    /// Reported by the device.
    Client,
    /// Set by users, delivered to the device.
    Shared,
    /// Set by users, never seen by the device.
    Server,
}

impl AttributeScope {
    pub const ALL: [AttributeScope; 3] = [Self::Client, Self::Shared, Self::Server];

    pub fn as_str(&self) -> &'static str {
        match self {
            AttributeScope::Client => "CLIENT_SCOPE",
            AttributeScope::Shared => "SHARED_SCOPE",
            AttributeScope::Server => "SERVER_SCOPE",
        }
    }
}

impl FromStr for AttributeScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttributeScope::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown attribute scope {s:?}: expected CLIENT_SCOPE, SHARED_SCOPE or SERVER_SCOPE")
            })
    }
}

/// One attribute of a device.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub scope: AttributeScope,
    pub key: String,
    pub value: crate::payload::Value,
    pub last_update_ms: TimestampMs,
}

/// A device's credentials as its owner sees them.
#[derive(Clone, PartialEq)]
pub enum DeviceCredentials {
    /// ThingsBoard's `ACCESS_TOKEN`: the token is the MQTT username / HTTP path segment.
    AccessToken(String),
    /// ThingsBoard's `X509_CERTIFICATE`: the device presents this certificate (its own,
    /// self-signed or not) as its TLS client certificate on MQTT over TLS, and is found by
    /// its `fingerprint`, the SHA-256 of its DER in lower-case hex. Made by
    /// [`DeviceCredentials::x509_certificate`].
    X509Certificate { fingerprint: String, pem: String },
}

impl DeviceCredentials {
    /// ThingsBoard's name of the kind: `ACCESS_TOKEN`, `X509_CERTIFICATE`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceCredentials::AccessToken(_) => "ACCESS_TOKEN",
            DeviceCredentials::X509Certificate { .. } => "X509_CERTIFICATE",
        }
    }

    /// X.509 credentials from one PEM certificate; the error says what is wrong.
    pub fn x509_certificate(pem: &str) -> Result<DeviceCredentials, String> {
        let certificate = PemCertificate::parse("credentialsValue", "the device's", pem)?;
        Ok(DeviceCredentials::X509Certificate {
            fingerprint: certificate.fingerprint,
            pem: certificate.pem,
        })
    }
}

/// One certificate in PEM, as people paste it: a device's own, or a device profile's CA.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PemCertificate {
    /// The SHA-256 of the DER, lower-case hex (`openssl x509 -fingerprint -sha256` without
    /// the colons).
    pub fingerprint: String,
    /// The PEM block alone, ending in a newline.
    pub pem: String,
    pub der: Vec<u8>,
}

impl PemCertificate {
    /// Exactly one `CERTIFICATE` block; errors name `field` and say `whose` certificate
    /// was expected.
    pub fn parse(field: &str, whose: &str, pem: &str) -> Result<PemCertificate, String> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let start = pem.find(BEGIN).ok_or_else(|| {
            format!("{field} must hold {whose} certificate in PEM ({BEGIN} ... {END})")
        })?;
        let body_start = start + BEGIN.len();
        let body_len = pem[body_start..]
            .find(END)
            .ok_or_else(|| format!("the PEM certificate is not closed by {END}"))?;
        let block_end = body_start + body_len + END.len();
        if pem[block_end..].contains(BEGIN) {
            return Err(format!("{field} must hold one certificate, {whose} own"));
        }
        let body: String = pem[body_start..body_start + body_len]
            .split_whitespace()
            .collect();
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("the PEM certificate's body is not valid base64: {e}"))?;
        // An X.509 certificate is a DER SEQUENCE; anything else never matches a handshake.
        if der.len() < 64 || der[0] != 0x30 {
            return Err("the PEM block does not hold a DER X.509 certificate".into());
        }
        Ok(PemCertificate {
            fingerprint: sha256_hex(&der),
            pem: format!("{}\n", &pem[start..block_end]),
            der,
        })
    }
}

impl PemCertificate {
    /// A certificate received in DER (a TLS client's), in PEM with 64-character lines.
    pub fn from_der(der: &[u8]) -> PemCertificate {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        PemCertificate {
            fingerprint: sha256_hex(der),
            pem,
            der: der.to_vec(),
        }
    }
}

/// What X.509 certificates are found by: the SHA-256 of the DER, lower-case hex.
pub fn sha256_hex(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceCredentials::AccessToken(_) => f.write_str("AccessToken(<redacted>)"),
            DeviceCredentials::X509Certificate { fingerprint, .. } => {
                write!(f, "X509Certificate(sha256 {fingerprint})")
            }
        }
    }
}

/// A page request in ThingsBoard's terms: `page` counts from 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub page_size: usize,
    pub page: usize,
    /// Case-insensitive substring of the entity's name or title.
    pub text_search: Option<String>,
}

impl PageRequest {
    pub const MAX_PAGE_SIZE: usize = 1000;

    /// Cuts `items` (already filtered and sorted) into the requested page.
    pub fn apply<T>(&self, items: Vec<T>) -> Page<T> {
        let total = items.len();
        let size = self.page_size.max(1);
        let total_pages = total.div_ceil(size);
        let start = self.page.saturating_mul(size).min(total);
        let data: Vec<T> = items.into_iter().skip(start).take(size).collect();
        let has_next = start + data.len() < total;
        Page {
            data,
            total_pages,
            total_elements: total,
            has_next,
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        match &self.text_search {
            None => true,
            Some(needle) => text.to_lowercase().contains(&needle.to_lowercase()),
        }
    }
}

/// ThingsBoard's page shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub total_pages: usize,
    pub total_elements: usize,
    pub has_next: bool,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            total_pages: self.total_pages,
            total_elements: self.total_elements,
            has_next: self.has_next,
        }
    }
}

/// A device profile (ThingsBoard's `DeviceProfile`, the subset that drives provisioning).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceProfileId(pub uuid::Uuid);

impl DeviceProfileId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// The id of a tenant's default profile (ThingsBoard's `"default": true` profile, which
    /// holds every device not put in another). It has no row: nothing about it is
    /// configurable here (no provisioning, no rules), so it is derived from the tenant's id,
    /// the same on every read (a custom-version UUID: the tenant's bytes, reversed).
    pub fn default_of(tenant: TenantId) -> Self {
        let mut bytes = *tenant.as_uuid().as_bytes();
        bytes.reverse();
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for DeviceProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for DeviceProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceProfileId({})", self.0)
    }
}

impl FromStr for DeviceProfileId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

impl DeviceProfile {
    /// The tenant's default profile (see [`DeviceProfileId::default_of`]): named `default`,
    /// provisioning disabled.
    pub fn tenant_default(tenant: TenantId) -> DeviceProfile {
        DeviceProfile {
            id: DeviceProfileId::default_of(tenant),
            tenant_id: tenant,
            name: "default".into(),
            provision_type: ProvisionType::Disabled,
            provision_device_key: None,
            provision_device_secret: None,
            x509: None,
            created_ms: 0,
        }
    }

    pub fn is_tenant_default(&self) -> bool {
        self.id == DeviceProfileId::default_of(self.tenant_id)
    }
}

/// ThingsBoard's `DeviceProfileProvisionType`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ProvisionType {
    Disabled,
    /// Devices create themselves with the profile's key and secret.
    AllowCreateNewDevices,
    /// Devices created beforehand in the profile fetch their credentials, once.
    CheckPreProvisionedDevices,
    /// Devices present, on MQTT over TLS, a certificate chain that holds the profile's CA
    /// certificate; the name in their certificate's CN finds the device, or creates it
    /// (see [`X509ChainProvisioning`]).
    X509CertificateChain,
}

impl ProvisionType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProvisionType::Disabled => "DISABLED",
            ProvisionType::AllowCreateNewDevices => "ALLOW_CREATE_NEW_DEVICES",
            ProvisionType::CheckPreProvisionedDevices => "CHECK_PRE_PROVISIONED_DEVICES",
            ProvisionType::X509CertificateChain => "X509_CERTIFICATE_CHAIN",
        }
    }
}

impl FromStr for ProvisionType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "DISABLED" => Ok(ProvisionType::Disabled),
            "ALLOW_CREATE_NEW_DEVICES" => Ok(ProvisionType::AllowCreateNewDevices),
            "CHECK_PRE_PROVISIONED_DEVICES" => Ok(ProvisionType::CheckPreProvisionedDevices),
            "X509_CERTIFICATE_CHAIN" => Ok(ProvisionType::X509CertificateChain),
            other => Err(format!(
                "unknown provisionType {other:?}: expected DISABLED, ALLOW_CREATE_NEW_DEVICES, CHECK_PRE_PROVISIONED_DEVICES or X509_CERTIFICATE_CHAIN"
            )),
        }
    }
}

#[derive(Clone, PartialEq)]
pub struct DeviceProfile {
    pub id: DeviceProfileId,
    pub tenant_id: TenantId,
    pub name: String,
    pub provision_type: ProvisionType,
    /// For `X509_CERTIFICATE_CHAIN`, as in ThingsBoard, set by the server: the CA
    /// certificate's SHA-256 fingerprint.
    pub provision_device_key: Option<String>,
    /// Shown to the tenant's administrators only; sealed at rest. For
    /// `X509_CERTIFICATE_CHAIN`, as in ThingsBoard: the CA certificate in PEM.
    pub provision_device_secret: Option<String>,
    /// Set exactly when the type is `X509_CERTIFICATE_CHAIN`.
    pub x509: Option<X509ChainProvisioning>,
    pub created_ms: TimestampMs,
}

/// How an `X509_CERTIFICATE_CHAIN` profile names the device of a certificate
/// (ThingsBoard's `X509CertificateChainProvisionConfiguration`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct X509ChainProvisioning {
    /// `certificateRegExPattern`: the first group of its first match in the certificate's
    /// Common Name is the device's name.
    pub certificate_pattern: String,
    /// `allowCreateNewDevicesByX509Certificate`: a name no device has yet creates one;
    /// otherwise only devices created beforehand in the profile are found.
    pub allow_create: bool,
}

impl X509ChainProvisioning {
    /// Checks the pattern: a regular expression with a group to take the name from.
    pub fn new(certificate_pattern: &str, allow_create: bool) -> Result<Self, String> {
        if certificate_pattern.chars().count() > 255 {
            return Err("certificateRegExPattern must have at most 255 characters".into());
        }
        let compiled = regex::Regex::new(certificate_pattern)
            .map_err(|e| format!("certificateRegExPattern is not a regular expression: {e}"))?;
        if compiled.captures_len() < 2 {
            return Err(format!(
                "certificateRegExPattern {certificate_pattern:?} has no group: put the part of the Common Name that names the device in parentheses, e.g. \"(.*)\""
            ));
        }
        Ok(X509ChainProvisioning {
            certificate_pattern: certificate_pattern.to_string(),
            allow_create,
        })
    }

    /// The device's name in a certificate's Common Name, if the pattern finds one that
    /// is a valid device name.
    pub fn device_name(&self, common_name: &str) -> Option<String> {
        let compiled = regex::Regex::new(&self.certificate_pattern).ok()?;
        let name = compiled.captures(common_name)?.get(1)?.as_str();
        crate::validate::name("deviceName", name, 255).ok()
    }
}

impl fmt::Debug for DeviceProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceProfile")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("provision_type", &self.provision_type)
            .finish_non_exhaustive()
    }
}

/// Device provisioning and claiming payloads (ThingsBoard's `ProvisionRequest`,
/// `JsonConverter.convertToProvisionRequestMsg` and `convertToClaimDeviceProto`).
pub mod provisioning {
    use serde_json::{Value, json};

    use crate::TimestampMs;

    /// A device asking for credentials (`/provision/request`, `POST /api/v1/provision`).
    #[derive(Clone, PartialEq)]
    pub struct ProvisionRequest {
        /// Trimmed; `None` when absent or empty (a name is generated on creation).
        pub device_name: Option<String>,
        pub provision_device_key: String,
        pub provision_device_secret: String,
        /// The access token the device wants (`credentialsType: ACCESS_TOKEN`, `token`).
        pub token: Option<String>,
    }

    impl std::fmt::Debug for ProvisionRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ProvisionRequest(<redacted>)")
        }
    }

    /// Why a provisioning request was not understood.
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    pub enum ProvisionRequestError {
        #[error("the provisioning request is not a JSON object: {0}")]
        NotJson(String),
        #[error("{0} must be a string")]
        NotAString(&'static str),
        #[error(
            "credentialsType {0:?} is not supported: use ACCESS_TOKEN (with \"token\") or leave it out"
        )]
        CredentialsType(String),
        #[error("an ACCESS_TOKEN provisioning request needs a \"token\" string")]
        MissingToken,
    }

    fn text(
        o: &serde_json::Map<String, Value>,
        field: &'static str,
    ) -> Result<Option<String>, ProvisionRequestError> {
        match o.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ProvisionRequestError::NotAString(field)),
        }
    }

    pub fn parse_provision_request(raw: &[u8]) -> Result<ProvisionRequest, ProvisionRequestError> {
        let value = crate::payload::parse_json(raw)
            .map_err(|e| ProvisionRequestError::NotJson(e.to_string()))?;
        let Value::Object(o) = value else {
            return Err(ProvisionRequestError::NotJson("expected an object".into()));
        };
        let token = match text(&o, "credentialsType")?.as_deref() {
            None => None,
            Some("ACCESS_TOKEN") => Some(
                text(&o, "token")?
                    .filter(|t| !t.is_empty())
                    .ok_or(ProvisionRequestError::MissingToken)?,
            ),
            Some(other) => return Err(ProvisionRequestError::CredentialsType(other.to_string())),
        };
        Ok(ProvisionRequest {
            device_name: text(&o, "deviceName")?
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty()),
            provision_device_key: text(&o, "provisionDeviceKey")?.unwrap_or_default(),
            provision_device_secret: text(&o, "provisionDeviceSecret")?.unwrap_or_default(),
            token,
        })
    }

    /// ThingsBoard's `ProvisionResponseStatus` and what goes with it.
    #[derive(Clone, PartialEq, Eq)]
    pub enum ProvisionOutcome {
        /// The device's access token.
        Success(String),
        /// No profile with this key and secret allows provisioning.
        NotFound,
        /// The profile matched but the device cannot be provisioned (name taken, not
        /// pre-provisioned, already provisioned, token taken...).
        Failure,
    }

    impl std::fmt::Debug for ProvisionOutcome {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(match self {
                ProvisionOutcome::Success(_) => "Success(<redacted>)",
                ProvisionOutcome::NotFound => "NotFound",
                ProvisionOutcome::Failure => "Failure",
            })
        }
    }

    impl ProvisionOutcome {
        /// The response JSON, as ThingsBoard's `JsonConverter.toJson(ProvisionDeviceResponseMsg)`.
        pub fn to_json(&self) -> Value {
            match self {
                ProvisionOutcome::Success(token) => json!({
                    "credentialsValue": token,
                    "credentialsType": "ACCESS_TOKEN",
                    "status": "SUCCESS",
                }),
                ProvisionOutcome::NotFound => json!({
                    "errorMsg": "Provision data was not found!",
                    "status": "NOT_FOUND",
                }),
                ProvisionOutcome::Failure => json!({
                    "errorMsg": "Failed to provision device!",
                    "status": "FAILURE",
                }),
            }
        }

        pub fn label(&self) -> &'static str {
            match self {
                ProvisionOutcome::Success(_) => "success",
                ProvisionOutcome::NotFound => "not_found",
                ProvisionOutcome::Failure => "failure",
            }
        }
    }

    /// ThingsBoard's `security.claim.duration` default: a claim is open for 24 hours
    /// unless the device asks for another positive duration.
    pub const DEFAULT_CLAIM_DURATION_MS: TimestampMs = 86_400_000;

    /// A device opening its claiming window (`v1/devices/me/claim`, `POST /api/v1/{token}/claim`).
    #[derive(Clone, PartialEq, Eq)]
    pub struct ClaimRequest {
        /// Empty when absent (ThingsBoard's `DEFAULT_SECRET_KEY`).
        pub secret_key: String,
        /// Positive; the default when absent, zero or negative.
        pub duration_ms: TimestampMs,
    }

    impl std::fmt::Debug for ClaimRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "ClaimRequest(<redacted>, {} ms)", self.duration_ms)
        }
    }

    /// An empty payload opens the window with an empty key and the default duration.
    pub fn parse_claim_request(raw: &[u8]) -> Result<ClaimRequest, String> {
        let mut request = ClaimRequest {
            secret_key: String::new(),
            duration_ms: DEFAULT_CLAIM_DURATION_MS,
        };
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(request);
        }
        let value = crate::payload::parse_json(raw)
            .map_err(|e| format!("the claiming request was refused: {e}"))?;
        let Value::Object(o) = value else {
            return Err("the claiming request must be a JSON object: {\"secretKey\": ..., \"durationMs\": ...}".into());
        };
        match o.get("secretKey") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => request.secret_key = s.clone(),
            Some(_) => return Err("secretKey must be a string".into()),
        }
        match o.get("durationMs") {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_i64() {
                Some(ms) if ms > 0 => request.duration_ms = ms,
                Some(_) => {}
                None => return Err("durationMs must be a whole number of milliseconds".into()),
            },
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device certificate made with openssl; its fingerprint as
    /// `openssl x509 -noout -fingerprint -sha256` prints it.
    const DEVICE_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBezCCASGgAwIBAgIUdugoYykwAaoXBxQYM+O+QfxSOSMwCgYIKoZIzj0EAwIw\nEzERMA8GA1UEAwwIZGV2aWNlLTEwHhcNMjYxMTIzMTIyNTQ5WhcNMzYxMTIwMTIy\nNTQ5WjATMREwDwYDVQQDDAhkZXZpY2UtMTBZMBMGByqGSM49AgEGCCqGSM49AwEH\nA0IABH8cwQncQ6sC+y2oeOKZZo5L6AkqfYsC+/ARmF5d5iGxlWiszFoWMrm6CRhE\ntXnMmm/vVC1Ckkn4xQy2BJZjGF+jUzBRMB0GA1UdDgQWBBQoDkw9TG5HJXolNrHE\nVZojPJ4i9zAfBgNVHSMEGDAWgBQoDkw9TG5HJXolNrHEVZojPJ4i9zAPBgNVHRMB\nAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQCNfhzPLn0YcY1+G6rajWv3oM3z\nHHJABO1Y8XIbGi1GcAIgDye6ktpiz/lCp0KA0SEUbL34nH8rQyn7z740eClX2oc=\n-----END CERTIFICATE-----\n";

    #[test]
    fn x509_credentials_are_found_by_the_certificates_sha256() {
        let given = format!("  \n{DEVICE_PEM}\n\n");
        let credentials = DeviceCredentials::x509_certificate(&given).unwrap();
        assert_eq!(credentials.kind(), "X509_CERTIFICATE");
        let DeviceCredentials::X509Certificate { fingerprint, pem } = &credentials else {
            panic!("{credentials:?}");
        };
        assert_eq!(
            fingerprint,
            "571f26537a8b9d5d69e07dd530cf0b33ba04b20be8261aa73bb90579542003cb"
        );
        assert_eq!(pem, DEVICE_PEM);
        // From the DER a TLS client sends, the same PEM and fingerprint.
        let parsed = PemCertificate::parse("f", "the device's", DEVICE_PEM).unwrap();
        assert_eq!(PemCertificate::from_der(&parsed.der), parsed);

        for (bad, why) in [
            ("MIIBezCCASGgAwIBAgIU", "in PEM"),
            ("-----BEGIN CERTIFICATE-----\nMIIB", "not closed"),
            (
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
                "not valid base64",
            ),
            (
                "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----",
                "does not hold a DER X.509 certificate",
            ),
        ] {
            let e = DeviceCredentials::x509_certificate(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let two = format!("{DEVICE_PEM}{DEVICE_PEM}");
        let e = DeviceCredentials::x509_certificate(&two).unwrap_err();
        assert!(e.contains("one certificate"), "{e}");
    }

    fn req(page_size: usize, page: usize) -> PageRequest {
        PageRequest {
            page_size,
            page,
            text_search: None,
        }
    }

    #[test]
    fn pages_cut_like_thingsboard() {
        let p = req(2, 0).apply(vec![1, 2, 3, 4, 5]);
        assert_eq!(p.data, vec![1, 2]);
        assert_eq!((p.total_pages, p.total_elements, p.has_next), (3, 5, true));
        let p = req(2, 2).apply(vec![1, 2, 3, 4, 5]);
        assert_eq!(p.data, vec![5]);
        assert!(!p.has_next);
        let p = req(2, 9).apply(vec![1, 2, 3]);
        assert!(p.data.is_empty());
        assert!(!p.has_next);
        let p = req(10, 0).apply(Vec::<u8>::new());
        assert_eq!((p.total_pages, p.total_elements), (0, 0));
    }

    #[test]
    fn text_search_is_case_insensitive_substring() {
        let r = PageRequest {
            page_size: 10,
            page: 0,
            text_search: Some("THERM".into()),
        };
        assert!(r.matches("Kitchen thermostat"));
        assert!(!r.matches("Door sensor"));
    }

    #[test]
    fn authority_round_trips() {
        for a in [
            Authority::SysAdmin,
            Authority::TenantAdmin,
            Authority::CustomerUser,
        ] {
            assert_eq!(a.as_str().parse::<Authority>().unwrap(), a);
        }
        assert!("ROOT".parse::<Authority>().unwrap_err().contains("ROOT"));
    }

    #[test]
    fn provisioning_requests_parse_like_thingsboard() {
        use provisioning::*;
        let r = parse_provision_request(
            br#"{"deviceName":" Pump 1 ","provisionDeviceKey":"k","provisionDeviceSecret":"s"}"#,
        )
        .unwrap();
        assert_eq!(r.device_name.as_deref(), Some("Pump 1"));
        assert_eq!(
            (
                r.provision_device_key.as_str(),
                r.provision_device_secret.as_str()
            ),
            ("k", "s")
        );
        assert_eq!(r.token, None);
        let r = parse_provision_request(br#"{"provisionDeviceKey":"k","provisionDeviceSecret":"s","credentialsType":"ACCESS_TOKEN","token":"T1","deviceName":"  "}"#).unwrap();
        assert_eq!((r.token.as_deref(), r.device_name), (Some("T1"), None));
        // Missing key and secret parse (and are NOT_FOUND later, as in ThingsBoard).
        let r = parse_provision_request(b"{}").unwrap();
        assert!(r.provision_device_key.is_empty());
        for (raw, needle) in [
            (&b"not json"[..], "not a JSON object"),
            (b"[1]", "not a JSON object"),
            (
                br#"{"provisionDeviceKey":5}"#,
                "provisionDeviceKey must be a string",
            ),
            (br#"{"credentialsType":"MQTT_BASIC"}"#, "MQTT_BASIC"),
            (br#"{"credentialsType":"ACCESS_TOKEN"}"#, "token"),
        ] {
            let e = parse_provision_request(raw).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        assert!(
            !format!(
                "{:?}",
                parse_provision_request(br#"{"provisionDeviceSecret":"TOPSECRET"}"#).unwrap()
            )
            .contains("TOPSECRET")
        );
    }

    #[test]
    fn provisioning_responses_are_thingsboards() {
        use provisioning::ProvisionOutcome;
        assert_eq!(
            ProvisionOutcome::Success("T".into()).to_json(),
            serde_json::json!({"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN", "credentialsValue": "T"})
        );
        assert_eq!(
            ProvisionOutcome::NotFound.to_json()["errorMsg"],
            "Provision data was not found!"
        );
        assert_eq!(ProvisionOutcome::Failure.to_json()["status"], "FAILURE");
    }

    #[test]
    fn claim_requests_default_like_thingsboard() {
        use provisioning::*;
        let r = parse_claim_request(b"").unwrap();
        assert_eq!(
            (r.secret_key.as_str(), r.duration_ms),
            ("", DEFAULT_CLAIM_DURATION_MS)
        );
        let r = parse_claim_request(br#"{"secretKey":"abc","durationMs":30000}"#).unwrap();
        assert_eq!((r.secret_key.as_str(), r.duration_ms), ("abc", 30000));
        let r = parse_claim_request(br#"{"durationMs":0}"#).unwrap();
        assert_eq!(r.duration_ms, DEFAULT_CLAIM_DURATION_MS);
        assert!(
            parse_claim_request(b"{")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            parse_claim_request(br#"{"secretKey":1}"#)
                .unwrap_err()
                .contains("secretKey")
        );
        assert!(
            parse_claim_request(br#"{"durationMs":"x"}"#)
                .unwrap_err()
                .contains("durationMs")
        );
        assert!(parse_claim_request(b"[]").unwrap_err().contains("object"));
    }

    #[test]
    fn provision_types_round_trip() {
        for t in [
            ProvisionType::Disabled,
            ProvisionType::AllowCreateNewDevices,
            ProvisionType::CheckPreProvisionedDevices,
            ProvisionType::X509CertificateChain,
        ] {
            assert_eq!(t.as_str().parse::<ProvisionType>().unwrap(), t);
        }
        let e = "X509".parse::<ProvisionType>().unwrap_err();
        assert!(e.contains("X509_CERTIFICATE_CHAIN"), "{e}");
    }

    #[test]
    fn a_certificate_pattern_needs_a_group_and_its_first_group_names_the_device() {
        let p = X509ChainProvisioning::new(r"(.+)\.meters\.example\.com", true).unwrap();
        assert_eq!(
            p.device_name("m-17.meters.example.com").as_deref(),
            Some("m-17")
        );
        assert_eq!(p.device_name("m-17.lamps.example.com"), None);
        let all = X509ChainProvisioning::new("(.*)", false).unwrap();
        assert_eq!(all.device_name("Meter 9").as_deref(), Some("Meter 9"));
        // An empty group, or one that is not a valid name, names no device.
        assert_eq!(all.device_name(""), None);
        assert_eq!(
            X509ChainProvisioning::new("x()", true)
                .unwrap()
                .device_name("x"),
            None
        );
        assert_eq!(all.device_name("a\u{7}b"), None);
        for (bad, why) in [
            (".+", "no group"),
            ("[", "not a regular expression"),
            ("(a", "not a regular expression"),
        ] {
            let e = X509ChainProvisioning::new(bad, true).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let long = format!("({})", "a".repeat(300));
        assert!(
            X509ChainProvisioning::new(&long, true)
                .unwrap_err()
                .contains("255")
        );
    }
}
