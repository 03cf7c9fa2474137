//! The personal data export (GDPR Art. 15 and 20): a zip with everything held about the
//! caller, in JSON for machines and CSV for people, with what Art. 15(1)(a)–(h) says they
//! must be told. It is produced while it is sent: each file is written and handed on before
//! the next is read, and telemetry is read page by page, so memory does not grow with the
//! amount of data. Nothing of it is written to disk.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use thingsafe_core::policy::PublishedPolicy;
use thingsafe_core::{Authority, Device, User, now_ms};
use thingsafe_store::{ConsentSubject, Scope, Store, TelemetryQuery};
use zip::write::{SimpleFileOptions, ZipWriter};

use crate::{consent, rfc3339};

/// Points read per telemetry page.
const PAGE: usize = 10_000;

/// Bytes written by the zip writer, taken out by the sender after each step.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Vec<u8>>>);

impl Write for Pending {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("export buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Pending {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("export buffer"))
    }
}

/// Where the export's bytes go; `false` from `send` stops the export (the client left).
pub trait Sink: Send {
    fn send(&mut self, bytes: Vec<u8>) -> impl Future<Output = bool> + Send;
}

pub(crate) struct Archive<S: Sink> {
    zip: ZipWriter<zip::write::StreamWriter<Pending>>,
    pending: Pending,
    sink: S,
}

#[derive(Debug)]
pub enum ExportError {
    /// The receiver went away; nothing more to do.
    Gone,
    Store(thingsafe_store::StoreError),
    Zip(String),
}

impl From<thingsafe_store::StoreError> for ExportError {
    fn from(e: thingsafe_store::StoreError) -> Self {
        ExportError::Store(e)
    }
}

impl From<zip::result::ZipError> for ExportError {
    fn from(e: zip::result::ZipError) -> Self {
        ExportError::Zip(e.to_string())
    }
}

impl From<io::Error> for ExportError {
    fn from(e: io::Error) -> Self {
        ExportError::Zip(e.to_string())
    }
}

impl<S: Sink> Archive<S> {
    pub(crate) fn new(sink: S) -> Self {
        let pending = Pending::default();
        Archive {
            zip: ZipWriter::new_stream(pending.clone()),
            pending,
            sink,
        }
    }

    fn options() -> SimpleFileOptions {
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)
    }

    async fn flush(&mut self) -> Result<(), ExportError> {
        let bytes = self.pending.take();
        if !bytes.is_empty() && !self.sink.send(bytes).await {
            return Err(ExportError::Gone);
        }
        Ok(())
    }

    pub(crate) async fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), ExportError> {
        self.zip.start_file(name, Self::options())?;
        self.zip.write_all(bytes)?;
        self.flush().await
    }

    pub(crate) async fn json(&mut self, name: &str, value: &Value) -> Result<(), ExportError> {
        let bytes = serde_json::to_vec_pretty(value).expect("JSON serialises");
        self.file(name, &bytes).await
    }

    pub(crate) async fn finish(self) -> Result<(), ExportError> {
        let Archive {
            zip,
            pending,
            mut sink,
        } = self;
        zip.finish()?;
        let bytes = pending.take();
        if !bytes.is_empty() && !sink.send(bytes).await {
            return Err(ExportError::Gone);
        }
        Ok(())
    }
}

/// One CSV field, quoted when it must be (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(crate) fn csv_row(fields: &[&str]) -> String {
    let mut row = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    row.push_str("\r\n");
    row
}

/// What GDPR Art. 15(1)(a)–(h) says a person must be told, from the policy in force.
pub(crate) fn processing(policy: &PublishedPolicy) -> Value {
    let p = &policy.policy;
    let categories: Vec<Value> = p
        .categories
        .iter()
        .map(|(key, c)| {
            json!({
                "category": key,
                "description": c.description,
                "source": c.source,
                "purposes": c.purposes.iter().map(|(purpose, basis)| json!({
                    "purpose": purpose,
                    "description": p.purposes.get(purpose).map(|d| d.description.as_str()),
                    "legalBasis": basis.key(),
                    "article": basis.article(),
                })).collect::<Vec<_>>(),
                "retention": c.retention.to_string(),
                "retentionExplained": c.retention.human(),
                "recipients": p.recipients_of(key).map(|r| json!({
                    "name": r.name, "service": r.service, "country": r.country,
                    "safeguards": r.safeguards,
                    "toldOfChanges": r.notify_url.is_some(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "policyVersion": policy.version.version,
        "controller": p.controller,
        "dpo": p.dpo,
        "categories": categories,
        "automatedDecisionMaking": p.automated_decision_making.as_deref().unwrap_or("none"),
        "rights": [
            "access (this export)", "rectification (PATCH /api/privacy/me)",
            "erasure (DELETE /api/privacy/me)", "restriction (POST /api/privacy/me/restriction)",
            "objection (POST /api/privacy/requests, type OBJECTION)",
            "portability (this export)", "withdrawing consent (PUT /api/privacy/me/consents)",
            "lodging a complaint with a supervisory authority"
        ],
    })
}

/// Writes the export of `user` (who may see the devices of `scope`) into `sink`.
pub async fn export_person<S: Sink>(
    store: &dyn Store,
    policy: &PublishedPolicy,
    user: &User,
    sink: S,
) -> Result<(), ExportError> {
    let mut archive = Archive::new(sink);
    let scope = Scope::of(user);
    let generated = now_ms();
    archive
        .file(
            "README.txt",
            format!(
                "Everything this Thingsafe server holds about you, generated {}.\r\n\r\n\
                 profile.json         your account\r\n\
                 consents.json/.csv   every consent you gave or withdrew, with the policy version in force\r\n\
                 login_history.json/.csv  the sessions you signed in with\r\n\
                 devices.json         the devices you can see, their attributes, the data category of each telemetry key, and the policy version in force when each was added\r\n\
                 telemetry/<device id>.csv  everything those devices reported (time, key, value, and the privacy policy version in force when it was received; empty: received before versions were recorded)\r\n\
                 disclosures.json     to whom your data was disclosed: each recorded disclosure, and the processors that receive it as a matter of course\r\n\
                 processing.json      why we process it, on what legal basis, how long we keep it, who receives it, your rights (GDPR Art. 15(1))\r\n\
                 \r\nThe privacy policy in force now is version {}; it is at /privacy.\r\n",
                rfc3339(generated),
                policy.version.version
            )
            .as_bytes(),
        )
        .await?;

    let accepted = store.accepted_policy_version(user.id).await?;
    archive
        .json(
            "profile.json",
            &json!({
                "id": user.id,
                "email": user.email,
                "firstName": user.first_name,
                "lastName": user.last_name,
                "birthDate": user.birth_date.map(|d| d.to_string()),
                "authority": user.authority.as_str(),
                "tenantId": user.tenant_id,
                "customerId": user.customer_id,
                "createdTime": user.created_ms,
                "created": rfc3339(user.created_ms),
                "acceptedPolicyVersion": accepted,
            }),
        )
        .await?;

    let history = store.consent_history(ConsentSubject::User(user.id)).await?;
    let purposes = consent::person_purposes(&policy.policy);
    archive
        .json(
            "consents.json",
            &json!({
                "current": consent::current(&purposes, &history),
                "history": history,
            }),
        )
        .await?;
    let mut csv = csv_row(&["time", "purpose", "granted", "method", "policy_version"]);
    for c in &history {
        csv.push_str(&csv_row(&[
            &rfc3339(c.at_ms),
            &c.purpose,
            if c.granted { "yes" } else { "no" },
            &c.method,
            &c.policy_version.map(|v| v.to_string()).unwrap_or_default(),
        ]));
    }
    archive.file("consents.csv", csv.as_bytes()).await?;

    let sessions = store.sessions_of(user.id).await?;
    let mut csv = csv_row(&["signed_in", "expires", "ended"]);
    let mut json_sessions = Vec::new();
    for s in &sessions {
        csv.push_str(&csv_row(&[
            &rfc3339(s.created_ms),
            &rfc3339(s.expires_ms),
            &s.revoked_ms.map(rfc3339).unwrap_or_default(),
        ]));
        json_sessions.push(json!({
            "signedInTime": s.created_ms, "expiresTime": s.expires_ms, "endedTime": s.revoked_ms,
        }));
    }
    archive
        .json("login_history.json", &json!(json_sessions))
        .await?;
    archive.file("login_history.csv", csv.as_bytes()).await?;

    let devices = if user.authority == Authority::SysAdmin {
        Vec::new()
    } else {
        all_devices(store, &scope).await?
    };
    write_devices(&mut archive, store, &devices).await?;

    let notices = store.notices_of(user.id).await?;
    archive
        .json(
            "disclosures.json",
            &{
                let mut disclosures = disclosures_of(store, &policy.policy, user).await?;
                disclosures["recipientNotices"] = json!(notices);
                disclosures["recipientNoticesNote"] = json!("What the processors were told of your rectifications, erasure and restrictions (GDPR Art. 19), by a pseudonymous id, never your email.");
                disclosures
            },
        )
        .await?;
    archive.json("processing.json", &processing(policy)).await?;
    archive.finish().await
}

/// `devices.json` (devices, their attributes, the data category of each telemetry key) and
/// `telemetry/<device id>.csv` (everything they reported, read page by page).
pub(crate) async fn write_devices<S: Sink>(
    archive: &mut Archive<S>,
    store: &dyn Store,
    devices: &[Device],
) -> Result<(), ExportError> {
    // The devices were found through the caller's scope, all in one tenant: its
    // classification labels their keys.
    let classification = match devices.first() {
        Some(d) => {
            store
                .telemetry_classification(&Scope::Tenant(d.tenant_id))
                .await?
        }
        None => Default::default(),
    };
    let mut device_docs = Vec::new();
    for device in devices {
        let keys: Vec<Value> = store
            .device_latest(device, None)
            .await?
            .into_iter()
            .map(|p| {
                json!({
                    "key": p.key,
                    "category": classification
                        .get(&p.key)
                        .map_or(crate::retention::TELEMETRY_CATEGORY, String::as_str),
                })
            })
            .collect();
        let mut attributes = Vec::new();
        for attribute_scope in thingsafe_core::AttributeScope::ALL {
            for a in store
                .device_attributes(device, attribute_scope, None)
                .await?
            {
                attributes.push(json!({
                    "scope": attribute_scope.as_str(), "key": a.key, "value": a.value.to_json(),
                    "lastUpdateTime": a.last_update_ms,
                }));
            }
        }
        device_docs.push(json!({
            "id": device.id, "name": device.name, "type": device.device_type,
            "label": device.label, "createdTime": device.created_ms,
            "customerId": device.customer_id, "gateway": device.gateway,
            "attributes": attributes,
            "telemetryKeys": keys,
            "telemetryFile": format!("telemetry/{}.csv", device.id),
        }));
    }
    archive.json("devices.json", &json!(device_docs)).await?;

    for device in devices {
        archive.zip.start_file(
            format!("telemetry/{}.csv", device.id),
            Archive::<S>::options(),
        )?;
        archive
            .zip
            .write_all(csv_row(&["time", "ts_ms", "key", "value", "policy_version"]).as_bytes())?;
        let keys: Vec<String> = store
            .device_latest(device, None)
            .await?
            .into_iter()
            .map(|p| p.key)
            .collect();
        for key in keys {
            let mut start = i64::MIN;
            loop {
                let page = store
                    .device_telemetry_stamped(
                        device,
                        TelemetryQuery {
                            keys: vec![key.clone()],
                            start_ms: start,
                            end_ms: i64::MAX,
                            limit: PAGE,
                            descending: false,
                        },
                    )
                    .await?;
                let mut rows = String::new();
                for (p, version) in &page {
                    rows.push_str(&csv_row(&[
                        &rfc3339(p.ts),
                        &p.ts.to_string(),
                        &p.key,
                        &p.value.as_string(),
                        &version.map(|v| v.to_string()).unwrap_or_default(),
                    ]));
                }
                archive.zip.write_all(rows.as_bytes())?;
                archive.flush().await?;
                match page.last() {
                    Some((last, _)) if page.len() == PAGE => start = last.ts + 1,
                    _ => break,
                }
            }
        }
    }
    Ok(())
}

/// The person's disclosures: those recorded in the log, and the processors the policy
/// names for the categories held about them.
pub async fn disclosures_of(
    store: &dyn Store,
    policy: &thingsafe_core::policy::Policy,
    user: &User,
) -> Result<Value, thingsafe_store::StoreError> {
    let recorded = store
        .disclosures(
            &Scope::of(user),
            thingsafe_store::records::DisclosureFilter::Subject(user.id),
        )
        .await?;
    let processors: Vec<Value> = policy
        .processors
        .iter()
        .map(crate::ropa::processor)
        .collect();
    Ok(json!({
        "disclosures": recorded,
        "processors": processors,
        "note": "disclosures: each time your data was sent to a processor or third party, as recorded. processors: who receives your data as a matter of course, as the privacy policy declares.",
    }))
}

pub(crate) async fn all_devices(
    store: &dyn Store,
    scope: &Scope,
) -> Result<Vec<Device>, ExportError> {
    let mut devices = Vec::new();
    let mut page = 0;
    loop {
        let batch = store
            .devices(
                scope,
                None,
                &thingsafe_core::PageRequest {
                    page_size: 1000,
                    page,
                    text_search: None,
                },
            )
            .await?;
        let more = batch.has_next;
        devices.extend(batch.data);
        if !more {
            return Ok(devices);
        }
        page += 1;
    }
}
