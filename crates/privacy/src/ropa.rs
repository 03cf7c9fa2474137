//! The records of processing activities (GDPR Art. 30(1)) and a fideslang data map, both
//! drawn from the privacy policy in force: what `privacy.toml` declares is what the server
//! does, so the records cannot drift from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thingsafe_core::policy::{
    Policy, Processor, PublishedPolicy, category_label, country_name, data_use_label, in_eea,
};

/// The categories of data subjects (fideslang `data_subjects`): the people with accounts
/// (administrators and customer users of tenants) and the people their devices report on.
pub const DATA_SUBJECTS: &[(&str, &str)] = &[(
    "customer",
    "People with an account on this server (tenant administrators and customer users) and the people whose devices report to it",
)];

/// Art. 30(1)(g): the technical and organisational security measures (Art. 32(1)), as this
/// server keeps them.
pub const SECURITY_MEASURES: &[&str] = &[
    "Personal fields and telemetry are encrypted at rest (XChaCha20-Poly1305) with a data key per person, customer or tenant; data keys are kept apart from the data, wrapped by a master key",
    "Erasure destroys the data key: every copy, backups included, becomes unreadable at once",
    "Passwords are kept only as salted Argon2id hashes; accounts lock after repeated failed sign-ins",
    "TLS 1.3/1.2 on every listener (HTTPS, MQTT over TLS); device tokens and certificates are never stored in plaintext",
    "Tenant isolation is enforced in the storage layer: every query is confined to the caller's tenant",
    "An append-only, hash-chained audit log of sign-ins, consents, exports, erasures, account, device and policy changes",
    "Encrypted scheduled backups; key-store backups expire so that erasures reach them",
    "A breach register with the 72-hour notification clock (Art. 33)",
];

fn contact(c: &thingsafe_core::policy::Contact) -> Value {
    json!({"name": c.name, "email": c.email, "address": c.address})
}

fn recipients<'a>(policy: &'a Policy, category: &'a str) -> Vec<&'a str> {
    policy
        .recipients_of(category)
        .map(|p| p.name.as_str())
        .collect()
}

/// A processor as the records of processing and a person's disclosures show it.
pub fn processor(r: &Processor) -> Value {
    json!({
        "name": r.name, "service": r.service, "country": r.country,
        "countryName": country_name(&r.country), "categories": r.categories,
        "safeguards": r.safeguards,
    })
}

/// The records of processing as JSON, one key per point of Art. 30(1)(a)–(g).
pub fn records(published: &PublishedPolicy) -> Value {
    let p = &published.policy;
    let purposes: Vec<Value> = p
        .purposes
        .iter()
        .map(|(purpose, d)| {
            let categories: Vec<Value> = p
                .categories
                .iter()
                .filter_map(|(key, c)| {
                    c.purposes.get(purpose).map(|basis| {
                        json!({"category": key, "legalBasis": basis.key(), "article": basis.article()})
                    })
                })
                .collect();
            json!({
                "purpose": purpose,
                "label": data_use_label(purpose),
                "description": d.description,
                "categories": categories,
            })
        })
        .collect();
    let categories: Vec<Value> = p
        .categories
        .iter()
        .map(|(key, c)| {
            json!({
                "category": key,
                "label": category_label(key),
                "description": c.description,
                "source": c.source,
                "recipients": recipients(p, key),
            })
        })
        .collect();
    let processors: Vec<Value> = p.processors.iter().map(processor).collect();
    let transfers: Vec<Value> = p
        .processors
        .iter()
        .filter(|r| !in_eea(&r.country))
        .map(|r| {
            json!({
                "recipient": r.name, "country": r.country, "countryName": country_name(&r.country),
                "categories": r.categories, "safeguards": r.safeguards,
            })
        })
        .collect();
    let retention: Vec<Value> = p
        .categories
        .iter()
        .map(|(key, c)| {
            json!({"category": key, "retention": c.retention.to_string(), "explained": c.retention.human()})
        })
        .collect();
    json!({
        "policyVersion": published.version.version,
        "policySha256": published.version.sha256,
        "controller": contact(&p.controller),
        "dpo": p.dpo.as_ref().map(contact),
        "purposes": purposes,
        "dataSubjects": DATA_SUBJECTS.iter().map(|(k, d)| json!({"key": k, "description": d})).collect::<Vec<_>>(),
        "dataCategories": categories,
        "recipients": processors,
        "transfers": transfers,
        "retention": retention,
        "securityMeasures": SECURITY_MEASURES,
        "automatedDecisionMaking": p.automated_decision_making.as_deref().unwrap_or("none"),
    })
}

/// The CSV columns: one row per purpose and category processed for it.
const CSV_HEADER: &[&str] = &[
    "controller",
    "controller_email",
    "dpo",
    "dpo_email",
    "purpose",
    "purpose_description",
    "legal_basis",
    "data_category",
    "data_category_description",
    "data_subjects",
    "source",
    "recipients",
    "transfers_outside_eea",
    "retention",
    "security_measures",
];

/// The records of processing as CSV (RFC 4180): one row per purpose and data category.
pub fn records_csv(published: &PublishedPolicy) -> Vec<u8> {
    let p = &published.policy;
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(CSV_HEADER).expect("writing to memory");
    let subjects = DATA_SUBJECTS
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join("; ");
    let security = SECURITY_MEASURES.join("; ");
    let dpo = p.dpo.as_ref();
    for (purpose, d) in &p.purposes {
        for (key, c) in &p.categories {
            let Some(basis) = c.purposes.get(purpose) else {
                continue;
            };
            let transfers = p
                .recipients_of(key)
                .filter(|r| !in_eea(&r.country))
                .map(|r| {
                    format!(
                        "{} ({}): {}",
                        r.name,
                        r.country,
                        r.safeguards.as_deref().unwrap_or("no safeguards stated")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            w.write_record([
                p.controller.name.as_str(),
                p.controller.email.as_str(),
                dpo.map_or("", |d| d.name.as_str()),
                dpo.map_or("", |d| d.email.as_str()),
                purpose.as_str(),
                d.description.as_str(),
                basis.key(),
                key.as_str(),
                c.description.as_str(),
                subjects.as_str(),
                c.source.as_str(),
                recipients(p, key).join("; ").as_str(),
                transfers.as_str(),
                c.retention.to_string().as_str(),
                security.as_str(),
            ])
            .expect("writing to memory");
        }
    }
    w.into_inner().expect("writing to memory")
}

// --- the fideslang data map -----------------------------------------------------------

/// A fideslang manifest: systems (and the datasets they hold) as Fides reads them, and the
/// data categories it names that the released fideslang does not know yet.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Manifest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_category: Vec<DataCategory>,
    pub system: Vec<System>,
    pub dataset: Vec<Dataset>,
}

/// A data category declared by the manifest, under its parent.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct DataCategory {
    pub fides_key: String,
    pub organization_fides_key: String,
    pub name: String,
    pub description: String,
    pub parent_key: String,
}

/// Categories of the fideslang 3.2 taxonomy (which `privacy.toml` is checked against) that
/// fideslang 3.1 (the release on PyPI, which Fides ships) does not have. The data map
/// declares those it uses, with their parents, so that Fides reads it either way.
const NEWER_THAN_FIDESLANG_3_1: &[&str] = &[
    "user.authorization.biometrics",
    "user.biometrics",
    "user.biometrics.fingerprint",
    "user.biometrics.retinal",
    "user.biometrics.voice",
    "user.children",
    "user.contact.address.mailing_address",
    "user.contact.social_url",
    "user.device.sensor",
    "user.device.telemetry",
    "user.health",
    "user.health.baby_formula",
    "user.health.condition",
    "user.health.genetic",
    "user.health.medical_diagnosis",
    "user.health.medications",
    "user.health.prescriptions",
    "user.health.record_id",
    "user.health.symptons",
    "user.health.treatment",
    "user.location.coarse",
    "user.professional_information",
    "user.professional_information.job_title",
    "user.professional_information.workplace",
    "user.settings",
    "user.social_activity",
    "user.unique_id.deterministic",
    "user.unique_id.probablistic",
];

/// The categories of `policy` (and their ancestors) unknown to fideslang 3.1, parents first.
fn newer_categories(policy: &Policy) -> Vec<DataCategory> {
    let mut keys = std::collections::BTreeSet::new();
    for category in policy.categories.keys() {
        let mut key = category.as_str();
        while NEWER_THAN_FIDESLANG_3_1.contains(&key) {
            keys.insert(key);
            match key.rsplit_once('.') {
                Some((parent, _)) => key = parent,
                None => break,
            }
        }
    }
    keys.into_iter()
        .map(|key| DataCategory {
            fides_key: key.to_string(),
            organization_fides_key: ORGANIZATION.into(),
            name: category_label(key).to_string(),
            description: policy.categories.get(key).map_or_else(
                || category_label(key).to_string(),
                |c| c.description.clone(),
            ),
            parent_key: key.rsplit_once('.').map_or("user", |(p, _)| p).to_string(),
        })
        .collect()
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct System {
    pub fides_key: String,
    pub organization_fides_key: String,
    pub name: String,
    pub description: String,
    pub system_type: String,
    pub privacy_declarations: Vec<PrivacyDeclaration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<DataFlow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<DataFlow>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct PrivacyDeclaration {
    pub name: String,
    pub data_categories: Vec<String>,
    pub data_use: String,
    pub data_subjects: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataset_references: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct DataFlow {
    pub fides_key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data_categories: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Dataset {
    pub fides_key: String,
    pub organization_fides_key: String,
    pub name: String,
    pub description: String,
    pub data_categories: Vec<String>,
    pub collections: Vec<Collection>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Collection {
    pub name: String,
    pub description: String,
    pub fields: Vec<Field>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub description: String,
    pub data_categories: Vec<String>,
}

const ORGANIZATION: &str = "default_organization";
const SYSTEM_KEY: &str = "thingsafe";
const DATASET_KEY: &str = "thingsafe_store";

/// A fides key from a name: lower-case letters, digits and underscores.
fn fides_key(name: &str) -> String {
    let key: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    key.trim_matches('_').to_string()
}

/// The data map: this server as a fideslang system with one privacy declaration per
/// purpose, its store as a dataset, each processor as a system it sends data to.
pub fn data_map(published: &PublishedPolicy) -> Manifest {
    let p = &published.policy;
    let subjects: Vec<String> = DATA_SUBJECTS.iter().map(|(k, _)| k.to_string()).collect();
    let declarations = p
        .purposes
        .keys()
        .map(|purpose| PrivacyDeclaration {
            name: format!("{} ({purpose})", data_use_label(purpose)),
            data_categories: p
                .categories
                .iter()
                .filter(|(_, c)| c.purposes.contains_key(purpose))
                .map(|(k, _)| k.clone())
                .collect(),
            data_use: purpose.clone(),
            data_subjects: subjects.clone(),
            dataset_references: vec![DATASET_KEY.to_string()],
        })
        .filter(|d| !d.data_categories.is_empty())
        .collect();
    let mut systems = vec![System {
        fides_key: SYSTEM_KEY.into(),
        organization_fides_key: ORGANIZATION.into(),
        name: "Thingsafe".into(),
        description: format!(
            "IoT platform run by {}; privacy policy version {}",
            p.controller.name, published.version.version
        ),
        system_type: "Service".into(),
        privacy_declarations: declarations,
        egress: p
            .processors
            .iter()
            .map(|r| DataFlow {
                fides_key: fides_key(&r.name),
                kind: "system".into(),
                data_categories: r.categories.clone(),
            })
            .collect(),
        ingress: Vec::new(),
    }];
    for r in &p.processors {
        // What a processor does is on the controller's behalf, for the purposes the
        // categories it receives are processed for.
        let mut uses: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for category in &r.categories {
            if let Some(c) = p.categories.get(category) {
                for purpose in c.purposes.keys() {
                    uses.entry(purpose).or_default().push(category.clone());
                }
            }
        }
        systems.push(System {
            fides_key: fides_key(&r.name),
            organization_fides_key: ORGANIZATION.into(),
            name: r.name.clone(),
            description: format!("{} ({})", r.service, r.country),
            system_type: "Service".into(),
            privacy_declarations: uses
                .into_iter()
                .map(|(purpose, categories)| PrivacyDeclaration {
                    name: format!("{} for {}", data_use_label(purpose), p.controller.name),
                    data_categories: categories,
                    data_use: purpose.to_string(),
                    data_subjects: subjects.clone(),
                    dataset_references: Vec::new(),
                })
                .collect(),
            egress: Vec::new(),
            ingress: vec![DataFlow {
                fides_key: SYSTEM_KEY.into(),
                kind: "system".into(),
                data_categories: r.categories.clone(),
            }],
        });
    }
    let fields = p
        .categories
        .iter()
        .map(|(key, c)| Field {
            name: fides_key(key),
            description: c.description.clone(),
            data_categories: vec![key.clone()],
        })
        .collect();
    Manifest {
        data_category: newer_categories(p),
        system: systems,
        dataset: vec![Dataset {
            fides_key: DATASET_KEY.into(),
            organization_fides_key: ORGANIZATION.into(),
            name: "Thingsafe data store".into(),
            description: "Everything the server keeps about people, personal fields sealed with their owner's data key".into(),
            data_categories: p.categories.keys().cloned().collect(),
            collections: vec![Collection {
                name: "personal_data".into(),
                description: "The data categories of the privacy policy, as the store holds them".into(),
                fields,
            }],
        }],
    }
}

/// The data map as YAML.
pub fn data_map_yaml(published: &PublishedPolicy) -> String {
    serde_yaml_ng::to_string(&data_map(published)).expect("a data map serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use thingsafe_core::policy::{DEFAULT_POLICY, PolicyVersion, parse};

    fn published(text: &str) -> PublishedPolicy {
        let policy = parse(text).unwrap();
        PublishedPolicy {
            version: PolicyVersion {
                version: 3,
                sha256: policy.canonical().sha256,
                published_ms: 0,
                material: true,
            },
            policy,
        }
    }

    fn with_processors() -> PublishedPolicy {
        published(&format!(
            "{DEFAULT_POLICY}\n[[processors]]\nname = \"Example Mail Ltd\"\nservice = \"Delivers our emails.\"\ncountry = \"IE\"\ncategories = [\"user.contact.email\", \"user.name\"]\n\n[[processors]]\nname = \"Example Cloud Inc.\"\nservice = \"Hosts our servers.\"\ncountry = \"US\"\ncategories = [\"user.contact.email\", \"user.device.telemetry\"]\nsafeguards = \"Standard contractual clauses.\"\n"
        ))
    }

    #[test]
    fn the_records_cover_art_30_1_a_to_g() {
        let p = with_processors();
        let r = records(&p);
        assert_eq!(r["controller"]["email"], "privacy@example.com");
        assert_eq!(r["dpo"]["email"], "dpo@example.com");
        let marketing = r["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["purpose"] == "marketing")
            .unwrap();
        assert_eq!(
            marketing["categories"],
            json!([{"category": "user.contact.email", "legalBasis": "consent", "article": "GDPR Art. 6(1)(a)"}])
        );
        assert_eq!(r["dataSubjects"][0]["key"], "customer");
        assert_eq!(
            r["dataCategories"].as_array().unwrap().len(),
            p.policy.categories.len()
        );
        assert_eq!(r["recipients"].as_array().unwrap().len(), 2);
        // Only the transfer outside the EEA, with its safeguards.
        assert_eq!(
            r["transfers"],
            json!([{"recipient": "Example Cloud Inc.", "country": "US", "countryName": "United States",
                    "categories": ["user.contact.email", "user.device.telemetry"],
                    "safeguards": "Standard contractual clauses."}])
        );
        let ip = r["retention"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["category"] == "user.device.ip_address")
            .unwrap();
        assert_eq!(ip["retention"], "30d");
        assert!(!r["securityMeasures"].as_array().unwrap().is_empty());
    }

    #[test]
    fn the_csv_has_a_row_per_purpose_and_category_and_quotes_what_it_must() {
        let p = with_processors();
        let bytes = records_csv(&p);
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            CSV_HEADER
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let expected: usize = p.policy.categories.values().map(|c| c.purposes.len()).sum();
        assert_eq!(rows.len(), expected);
        let email_marketing = rows
            .iter()
            .find(|r| &r[4] == "marketing" && &r[7] == "user.contact.email")
            .unwrap();
        assert_eq!(&email_marketing[6], "consent");
        assert_eq!(&email_marketing[11], "Example Cloud Inc.; Example Mail Ltd");
        assert_eq!(
            &email_marketing[12],
            "Example Cloud Inc. (US): Standard contractual clauses."
        );
        // Descriptions hold commas: the raw text quotes them, lines end in CRLF.
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\r\n"));
        assert!(text.contains(
            "\"Running the service you signed up for: your account and signing in, your devices"
        ));
    }

    #[test]
    fn the_data_map_names_every_category_and_data_use() {
        let p = with_processors();
        let yaml = data_map_yaml(&p);
        let back: Manifest = serde_yaml_ng::from_str(&yaml).unwrap();
        let thingsafe = &back.system[0];
        assert_eq!(thingsafe.fides_key, "thingsafe");
        let uses: Vec<&str> = thingsafe
            .privacy_declarations
            .iter()
            .map(|d| d.data_use.as_str())
            .collect();
        assert_eq!(uses, ["essential", "functional", "marketing"]);
        let mut declared: Vec<&str> = thingsafe
            .privacy_declarations
            .iter()
            .flat_map(|d| d.data_categories.iter().map(String::as_str))
            .collect();
        declared.sort();
        declared.dedup();
        let policy: Vec<&str> = p.policy.categories.keys().map(String::as_str).collect();
        assert_eq!(declared, policy);
        assert_eq!(
            thingsafe
                .egress
                .iter()
                .map(|e| e.fides_key.as_str())
                .collect::<Vec<_>>(),
            ["example_cloud_inc", "example_mail_ltd"]
        );
        assert_eq!(back.system[1].ingress[0].fides_key, "thingsafe");
        assert_eq!(back.dataset[0].data_categories, policy);
        // Telemetry is fideslang 3.2's: declared, under its parent, for Fides on 3.1.
        assert_eq!(back.data_category.len(), 1);
        assert_eq!(back.data_category[0].fides_key, "user.device.telemetry");
        assert_eq!(back.data_category[0].parent_key, "user.device");
    }
}
