//! The privacy policy as code: the model of `privacy.toml`, its validation, and its
//! canonical form (what a version is made of).
//!
//! - [`parse`] reads a policy and checks it against the fideslang taxonomy (data categories
//!   and data uses), the GDPR's legal bases, and itself (every purpose named is declared,
//!   every processor receives declared categories, ...). A refusal names the line, the
//!   column and the problem.
//! - [`Policy::canonical`] is the policy's content as canonical JSON with its SHA-256:
//!   comments and layout are not content, so only a change of content makes a new version;
//!   and a second hash over the *material* part (categories, purposes, legal bases,
//!   retention, processors, minimum age, cookies, automated decisions): a version is
//!   material when that hash differs from the previous version's.
//!
//! No I/O: the text comes from the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::TimestampMs;

/// The built-in default policy (a commented `privacy.toml`), used when the operator gives
/// none.
pub const DEFAULT_POLICY: &str = include_str!("../privacy.toml");

/// The categories Thingsafe itself collects from every account: a policy must declare
/// each (or an ancestor of it, such as `user.contact` for `user.contact.email`).
pub const COLLECTED_BY_THINGSAFE: &[(&str, &str)] = &[
    (
        "user.contact.email",
        "the email address of every account, asked at sign-up",
    ),
    (
        "user.name",
        "the first and last names people may give at sign-up",
    ),
    (
        "user.demographic.date_of_birth",
        "the birth date asked at sign-up for the age check",
    ),
    (
        "user.authorization.credentials",
        "the password of every account, kept as an Argon2id hash",
    ),
];

// --- the model -------------------------------------------------------------------------

/// A validated privacy policy. Its serde form (camelCase JSON) is the canonical one: maps
/// are sorted by key, processors by name, cookies in their fixed order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub controller: Contact,
    pub dpo: Option<Contact>,
    pub minimum_age: u8,
    pub request_deadline: Period,
    /// `None`: no decision is based solely on automated processing (GDPR Art. 22).
    pub automated_decision_making: Option<String>,
    pub cookies: Vec<CookieCategory>,
    /// fideslang data use → what it means here.
    pub purposes: BTreeMap<String, Purpose>,
    /// fideslang data category → how it is collected, used and kept.
    pub categories: BTreeMap<String, Category>,
    pub processors: Vec<Processor>,
    /// Records the server keeps about what happened (sessions, requests, the audit log, ...)
    /// → how long. A record not listed is kept until its account or tenant is erased.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub records: BTreeMap<String, Record>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub name: String,
    pub email: String,
    pub address: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Purpose {
    pub description: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    pub description: String,
    pub source: String,
    /// Purpose (a key of [`Policy::purposes`]) → the legal basis for it.
    pub purposes: BTreeMap<String, LegalBasis>,
    pub retention: Retention,
    /// What is kept once the retention ends: `None`, nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
}

/// Anonymised aggregates kept after a category's retention ends: per telemetry key and
/// hour, the count, minimum, maximum and mean of numeric values, without device, owner
/// or tenant.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    Hourly,
}

/// A record the server keeps about what happened, and how long.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub description: String,
    pub retention: Retention,
}

/// The records a policy may give a retention to under `[records.<name>]`, what each is,
/// and the shortest retention accepted (in hours) with why.
pub const RECORDS: &[(&str, &str, u64, &str)] = &[
    (
        LOGIN_HISTORY,
        "ended sessions (the login history): when each session began, ended and was revoked",
        0,
        "",
    ),
    (
        VISITOR_CONSENTS,
        "the cookie choices of visitors without an account, by the random id in their consent cookie",
        180 * 24,
        "the consent cookie lives 180 days, and the choice it carries must be provable while it does (GDPR Art. 7(1))",
    ),
    (
        CLOSED_REQUESTS,
        "data-subject requests once completed or refused, with their audit trail",
        90 * 24,
        "a no-account requester's details stay readable 90 days after the request is closed",
    ),
    (
        AUDIT_EVENTS,
        "the audit log's events (the oldest go first; the chain stays verifiable from an anchor)",
        0,
        "",
    ),
    (
        DISCLOSURES,
        "the log of disclosures of people's data to processors and third parties",
        2 * 365 * 24,
        "the yearly list of California Civil Code 1798.83 covers the preceding calendar year and may be asked for until the end of this one",
    ),
    (
        RPC_CALLS,
        "persistent RPC commands to devices once done with (answered, expired or failed), with their answers",
        0,
        "",
    ),
];
pub const LOGIN_HISTORY: &str = "login_history";
pub const VISITOR_CONSENTS: &str = "visitor_consents";
pub const CLOSED_REQUESTS: &str = "closed_requests";
pub const AUDIT_EVENTS: &str = "audit_events";
pub const DISCLOSURES: &str = "disclosures";
pub const RPC_CALLS: &str = "rpc_calls";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Processor {
    pub name: String,
    /// What they do for us.
    pub service: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// Keys of [`Policy::categories`], sorted.
    pub categories: Vec<String>,
    /// How a transfer outside the EEA is safeguarded (GDPR Art. 45-46).
    pub safeguards: Option<String>,
    /// Where rectifications, erasures and restrictions are announced to it (GDPR Art. 19):
    /// an http(s) URL that receives a JSON POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
}

/// GDPR Art. 6(1).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterest,
    PublicTask,
    LegitimateInterest,
}

impl LegalBasis {
    pub const ALL: [LegalBasis; 6] = [
        LegalBasis::Consent,
        LegalBasis::Contract,
        LegalBasis::LegalObligation,
        LegalBasis::VitalInterest,
        LegalBasis::PublicTask,
        LegalBasis::LegitimateInterest,
    ];

    /// The name used in `privacy.toml` and the JSON.
    pub fn key(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::VitalInterest => "vital_interest",
            LegalBasis::PublicTask => "public_task",
            LegalBasis::LegitimateInterest => "legitimate_interest",
        }
    }

    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            LegalBasis::Consent => "Your consent",
            LegalBasis::Contract => "Our contract with you",
            LegalBasis::LegalObligation => "A legal obligation",
            LegalBasis::VitalInterest => "Protecting someone's vital interests",
            LegalBasis::PublicTask => "A task in the public interest",
            LegalBasis::LegitimateInterest => "Our legitimate interests",
        }
    }

    pub fn article(self) -> &'static str {
        match self {
            LegalBasis::Consent => "GDPR Art. 6(1)(a)",
            LegalBasis::Contract => "GDPR Art. 6(1)(b)",
            LegalBasis::LegalObligation => "GDPR Art. 6(1)(c)",
            LegalBasis::VitalInterest => "GDPR Art. 6(1)(d)",
            LegalBasis::PublicTask => "GDPR Art. 6(1)(e)",
            LegalBasis::LegitimateInterest => "GDPR Art. 6(1)(f)",
        }
    }

    fn parse(s: &str) -> Option<LegalBasis> {
        LegalBasis::ALL.into_iter().find(|b| b.key() == s)
    }
}

/// Cookie categories, in their fixed order.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum CookieCategory {
    Necessary,
    Performance,
    Functionality,
    Advertising,
}

impl CookieCategory {
    pub const ALL: [CookieCategory; 4] = [
        CookieCategory::Necessary,
        CookieCategory::Performance,
        CookieCategory::Functionality,
        CookieCategory::Advertising,
    ];

    pub fn key(self) -> &'static str {
        match self {
            CookieCategory::Necessary => "necessary",
            CookieCategory::Performance => "performance",
            CookieCategory::Functionality => "functionality",
            CookieCategory::Advertising => "advertising",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CookieCategory::Necessary => "Strictly necessary",
            CookieCategory::Performance => "Performance",
            CookieCategory::Functionality => "Functionality",
            CookieCategory::Advertising => "Advertising",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            CookieCategory::Necessary => {
                "Keep you signed in and the service secure. The service cannot work without them, so they need no consent."
            }
            CookieCategory::Performance => {
                "Count visits and measure how the service performs. Only with your consent."
            }
            CookieCategory::Functionality => {
                "Remember your choices, such as language or layout. Only with your consent."
            }
            CookieCategory::Advertising => {
                "Show you advertising and measure it. Only with your consent."
            }
        }
    }

    fn parse(s: &str) -> Option<CookieCategory> {
        CookieCategory::ALL.into_iter().find(|c| c.key() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Hours => "h",
            Unit::Days => "d",
            Unit::Weeks => "w",
            Unit::Months => "mo",
            Unit::Years => "y",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Unit::Hours => "hour",
            Unit::Days => "day",
            Unit::Weeks => "week",
            Unit::Months => "month",
            Unit::Years => "year",
        }
    }

    /// Hours in one unit; a month counts as 30 days, a year as 365.
    fn hours(self) -> u64 {
        match self {
            Unit::Hours => 1,
            Unit::Days => 24,
            Unit::Weeks => 7 * 24,
            Unit::Months => 30 * 24,
            Unit::Years => 365 * 24,
        }
    }
}

/// A length of time as written in the policy: `"30d"`, `"6mo"`, `"1y"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period {
    pub amount: u32,
    pub unit: Unit,
}

/// The largest amount accepted in a period (of any unit).
const MAX_AMOUNT: u32 = 100_000;

impl Period {
    /// Its length in hours (a month is 30 days, a year 365).
    pub fn hours(&self) -> u64 {
        u64::from(self.amount) * self.unit.hours()
    }

    /// For people: "30 days", "1 year".
    pub fn human(&self) -> String {
        let plural = if self.amount == 1 { "" } else { "s" };
        format!("{} {}{plural}", self.amount, self.unit.word())
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

const PERIOD_FORM: &str =
    "write a whole number and a unit (h, d, w, mo or y), such as \"30d\", \"6mo\" or \"1y\"";

impl FromStr for Period {
    type Err = String;

    fn from_str(s: &str) -> Result<Period, String> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (number, suffix) = s.split_at(digits);
        let unit = match suffix {
            "h" => Unit::Hours,
            "d" => Unit::Days,
            "w" => Unit::Weeks,
            "mo" => Unit::Months,
            "y" => Unit::Years,
            "m" if !number.is_empty() => {
                return Err(format!(
                    "{s:?} is ambiguous: write \"{number}mo\" for months (minutes are not a retention)"
                ));
            }
            _ => return Err(format!("{s:?} is not a duration: {PERIOD_FORM}")),
        };
        let amount: u32 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a duration: {PERIOD_FORM}"))?;
        if amount == 0 {
            return Err(format!(
                "{s:?} is no time at all: a duration must be above 0"
            ));
        }
        if amount > MAX_AMOUNT {
            return Err(format!(
                "{s:?} is too long: at most {MAX_AMOUNT} of a unit; use a larger unit"
            ));
        }
        Ok(Period { amount, unit })
    }
}

/// How long a category is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Retention {
    /// Deleted (or anonymised) this long after it was collected.
    For(Period),
    /// Kept until the account is deleted.
    AccountLifetime,
}

const ACCOUNT_LIFETIME: &str = "account_lifetime";

impl Retention {
    pub fn human(&self) -> String {
        match self {
            Retention::For(p) => p.human(),
            Retention::AccountLifetime => "as long as your account exists".into(),
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::For(p) => p.fmt(f),
            Retention::AccountLifetime => f.write_str(ACCOUNT_LIFETIME),
        }
    }
}

impl FromStr for Retention {
    type Err = String;

    fn from_str(s: &str) -> Result<Retention, String> {
        if s == ACCOUNT_LIFETIME {
            return Ok(Retention::AccountLifetime);
        }
        s.parse().map(Retention::For).map_err(|e| {
            if e.contains(PERIOD_FORM) {
                format!("{e}, or \"{ACCOUNT_LIFETIME}\"")
            } else {
                e
            }
        })
    }
}

/// Periods and retentions are strings in TOML and JSON: "30d", "account_lifetime".
macro_rules! serde_as_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_string!(Period);
serde_as_string!(Retention);

// --- versions --------------------------------------------------------------------------

/// A published version of the policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVersion {
    /// 1, 2, 3, ... in order of publication.
    pub version: u32,
    /// SHA-256 (hex) of the canonical JSON.
    pub sha256: String,
    #[serde(rename = "publishedTime")]
    pub published_ms: TimestampMs,
    /// Whether categories, purposes, legal bases, retention, processors, the minimum age,
    /// cookies or automated decisions changed from the previous version (the first version
    /// is material: everything in it is new).
    pub material: bool,
}

/// The policy in force and its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedPolicy {
    pub policy: Policy,
    pub version: PolicyVersion,
}

/// What identifies a policy's content: its canonical JSON and two hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canonical {
    pub json: String,
    /// SHA-256 (hex) of `json`: a different hash is a new version.
    pub sha256: String,
    /// SHA-256 (hex) of the material part: a different hash is a material change.
    pub material_sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What people must be told again about when it changes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MaterialView<'a> {
    categories: BTreeMap<&'a str, (&'a BTreeMap<String, LegalBasis>, Retention)>,
    purposes: BTreeSet<&'a str>,
    processors: Vec<(&'a str, &'a str, &'a [String])>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    records: BTreeMap<&'a str, Retention>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    aggregates: BTreeMap<&'a str, Aggregate>,
    minimum_age: u8,
    cookies: &'a [CookieCategory],
    automated_decision_making: &'a Option<String>,
}

impl Policy {
    /// The canonical JSON and its hashes.
    pub fn canonical(&self) -> Canonical {
        let json = serde_json::to_string(self).expect("a policy serialises");
        let material = MaterialView {
            categories: self
                .categories
                .iter()
                .map(|(k, c)| (k.as_str(), (&c.purposes, c.retention)))
                .collect(),
            purposes: self.purposes.keys().map(String::as_str).collect(),
            processors: self
                .processors
                .iter()
                .map(|p| (p.name.as_str(), p.country.as_str(), p.categories.as_slice()))
                .collect(),
            records: self
                .records
                .iter()
                .map(|(k, r)| (k.as_str(), r.retention))
                .collect(),
            aggregates: self
                .categories
                .iter()
                .filter_map(|(k, c)| Some((k.as_str(), c.aggregate?)))
                .collect(),
            minimum_age: self.minimum_age,
            cookies: &self.cookies,
            automated_decision_making: &self.automated_decision_making,
        };
        let material = serde_json::to_string(&material).expect("a policy serialises");
        Canonical {
            sha256: sha256_hex(json.as_bytes()),
            material_sha256: sha256_hex(material.as_bytes()),
            json,
        }
    }

    /// The built-in default.
    pub fn builtin() -> Policy {
        parse(DEFAULT_POLICY).expect("the built-in privacy policy is valid")
    }

    /// Purposes that some category is processed for on the basis of consent: each needs the
    /// person's own opt-in and is off until given.
    pub fn consent_purposes(&self) -> BTreeSet<&str> {
        self.categories
            .values()
            .flat_map(|c| c.purposes.iter())
            .filter(|(_, basis)| **basis == LegalBasis::Consent)
            .map(|(purpose, _)| purpose.as_str())
            .collect()
    }

    /// Cookie categories that need the visitor's consent (all but the necessary ones).
    pub fn consent_cookies(&self) -> impl Iterator<Item = CookieCategory> + '_ {
        self.cookies
            .iter()
            .copied()
            .filter(|c| *c != CookieCategory::Necessary)
    }

    /// The processors that receive `category`.
    pub fn recipients_of<'a>(&'a self, category: &'a str) -> impl Iterator<Item = &'a Processor> {
        self.processors
            .iter()
            .filter(move |p| p.categories.iter().any(|c| c == category))
    }
}

// --- parsing and validation ------------------------------------------------------------

/// Why a policy was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for PolicyError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    controller: Spanned<RawContact>,
    dpo: Option<Spanned<RawContact>>,
    minimum_age: Option<Spanned<i64>>,
    request_deadline: Option<Spanned<String>>,
    automated_decision_making: Option<Spanned<String>>,
    cookies: Option<Spanned<Vec<Spanned<String>>>>,
    purposes: Spanned<BTreeMap<Spanned<String>, Spanned<RawPurpose>>>,
    categories: Spanned<BTreeMap<Spanned<String>, Spanned<RawCategory>>>,
    #[serde(default)]
    processors: Vec<Spanned<RawProcessor>>,
    #[serde(default)]
    records: BTreeMap<Spanned<String>, Spanned<RawRecord>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    description: Spanned<String>,
    retention: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContact {
    name: Spanned<String>,
    email: Spanned<String>,
    address: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurpose {
    description: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    description: Spanned<String>,
    source: Spanned<String>,
    purposes: Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
    retention: Spanned<String>,
    aggregate: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcessor {
    name: Spanned<String>,
    service: Spanned<String>,
    country: Spanned<String>,
    categories: Spanned<Vec<Spanned<String>>>,
    safeguards: Option<Spanned<String>>,
    notify_url: Option<Spanned<String>>,
}

/// The default minimum age (GDPR Art. 8(1)).
pub const DEFAULT_MINIMUM_AGE: u8 = 16;
/// The minimum ages accepted.
pub const MINIMUM_AGES: std::ops::RangeInclusive<i64> = 13..=21;
/// The longest request deadline accepted (GDPR Art. 12(3): one month).
const MAX_DEADLINE_DAYS: u64 = 30;

struct Checker<'a> {
    text: &'a str,
}

impl Checker<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> PolicyError {
        let offset = span.start.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        PolicyError {
            line,
            column: self.text[line_start..offset].chars().count() + 1,
            message: message.into(),
        }
    }

    fn at<T>(&self, value: &Spanned<T>, message: impl Into<String>) -> PolicyError {
        self.error(value.span(), message)
    }

    /// Trimmed, not empty, no control characters other than line breaks.
    fn text(&self, value: &Spanned<String>, what: &str) -> Result<String, PolicyError> {
        let s = value.get_ref().trim();
        if s.is_empty() {
            return Err(self.at(value, format!("{what} must not be empty")));
        }
        if s.chars().any(|c| c.is_control() && c != '\n') {
            return Err(self.at(value, format!("{what} must not contain control characters")));
        }
        Ok(s.to_string())
    }

    fn contact(&self, raw: &Spanned<RawContact>, what: &str) -> Result<Contact, PolicyError> {
        let raw = raw.get_ref();
        let email = crate::validate::email(raw.email.get_ref())
            .map_err(|e| self.at(&raw.email, format!("{what}.email: {}", e.message)))?;
        Ok(Contact {
            name: self.text(&raw.name, &format!("{what}.name"))?,
            email,
            address: raw
                .address
                .as_ref()
                .map(|a| self.text(a, &format!("{what}.address")))
                .transpose()?,
        })
    }

    fn category_key(&self, key: &Spanned<String>) -> Result<(), PolicyError> {
        let k = key.get_ref().as_str();
        if DATA_CATEGORIES.iter().any(|(c, _)| *c == k) {
            return Ok(());
        }
        if let Some((_, new)) = DEPRECATED_CATEGORIES.iter().find(|(old, _)| *old == k) {
            return Err(self.at(
                key,
                format!("the fideslang data category {k:?} is deprecated: use {new:?}"),
            ));
        }
        Err(self.at(
            key,
            format!(
                "unknown fideslang data category {k:?}{}",
                suggestion(k, DATA_CATEGORIES.iter().map(|(c, _)| *c))
            ),
        ))
    }
}

/// A hint for an unknown name: the known name nearest to it (by edit distance), else the
/// names under its parent, else where the taxonomy is.
fn suggestion<'a>(given: &str, known: impl Iterator<Item = &'a str> + Clone) -> String {
    let nearest = known
        .clone()
        .map(|k| (edit_distance(given, k), k))
        .min_by_key(|(d, _)| *d);
    if let Some((distance, best)) = nearest
        && (distance <= 2 || distance * 4 <= given.len())
    {
        return format!(" (did you mean {best:?}?)");
    }
    if let Some((parent, _)) = given.rsplit_once('.') {
        let prefix = format!("{parent}.");
        let siblings: Vec<&str> = known
            .filter(|k| {
                k.strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.contains('.'))
            })
            .collect();
        if !siblings.is_empty() {
            return format!(" (under {parent}: {})", siblings.join(", "));
        }
    }
    " (see the fideslang taxonomy: https://ethyca.github.io/fideslang/)".into()
}

/// Levenshtein distance, in bytes (the names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Reads and checks a policy.
pub fn parse(text: &str) -> Result<Policy, PolicyError> {
    let check = Checker { text };
    let raw: RawPolicy = toml::from_str(text)
        .map_err(|e| check.error(e.span().unwrap_or(0..0), e.message().trim_end().to_string()))?;

    let controller = check.contact(&raw.controller, "controller")?;
    let dpo = raw
        .dpo
        .as_ref()
        .map(|d| check.contact(d, "dpo"))
        .transpose()?;

    let minimum_age = match &raw.minimum_age {
        None => DEFAULT_MINIMUM_AGE,
        Some(age) if MINIMUM_AGES.contains(age.get_ref()) => *age.get_ref() as u8,
        Some(age) => {
            return Err(check.at(
                age,
                format!(
                    "minimum_age {} is out of range: it must be between {} and {} (GDPR Art. 8 lets member states set 13 to 16)",
                    age.get_ref(),
                    MINIMUM_AGES.start(),
                    MINIMUM_AGES.end()
                ),
            ));
        }
    };

    let request_deadline = match &raw.request_deadline {
        None => Period {
            amount: MAX_DEADLINE_DAYS as u32,
            unit: Unit::Days,
        },
        Some(raw) => {
            let period: Period = raw
                .get_ref()
                .parse()
                .map_err(|e| check.at(raw, format!("request_deadline: {e}")))?;
            if period.hours() > MAX_DEADLINE_DAYS * 24 {
                return Err(check.at(
                    raw,
                    format!(
                        "request_deadline {period} is too long: at most {MAX_DEADLINE_DAYS}d (GDPR Art. 12(3): one month)"
                    ),
                ));
            }
            period
        }
    };

    let automated_decision_making = match &raw.automated_decision_making {
        None => None,
        Some(s) if s.get_ref().trim().eq_ignore_ascii_case("none") => None,
        Some(s) => Some(check.text(s, "automated_decision_making")?),
    };

    let mut cookies = Vec::new();
    match &raw.cookies {
        None => cookies.push(CookieCategory::Necessary),
        Some(list) => {
            for c in list.get_ref() {
                let category = CookieCategory::parse(c.get_ref()).ok_or_else(|| {
                    check.at(
                        c,
                        format!(
                            "unknown cookie category {:?}: use necessary, performance, functionality or advertising",
                            c.get_ref()
                        ),
                    )
                })?;
                if cookies.contains(&category) {
                    return Err(check.at(
                        c,
                        format!("cookie category {:?} is listed twice", c.get_ref()),
                    ));
                }
                cookies.push(category);
            }
            cookies.sort();
        }
    }

    let mut purposes = BTreeMap::new();
    for (key, purpose) in raw.purposes.get_ref() {
        let k = key.get_ref();
        if !DATA_USES.iter().any(|(u, _)| u == k) {
            return Err(check.at(
                key,
                format!(
                    "unknown fideslang data use {k:?} for a purpose{}",
                    suggestion(k, DATA_USES.iter().map(|(u, _)| *u))
                ),
            ));
        }
        purposes.insert(
            k.clone(),
            Purpose {
                description: check.text(
                    &purpose.get_ref().description,
                    &format!("purposes.{k}.description"),
                )?,
            },
        );
    }

    let mut categories = BTreeMap::new();
    for (key, category) in raw.categories.get_ref() {
        check.category_key(key)?;
        let k = key.get_ref();
        let c = category.get_ref();
        if c.purposes.get_ref().is_empty() {
            return Err(check.at(
                &c.purposes,
                format!("category {k:?} names no purpose: say why it is collected, such as purposes = {{ essential = \"contract\" }}"),
            ));
        }
        let mut uses = BTreeMap::new();
        for (purpose, basis) in c.purposes.get_ref() {
            if !purposes.contains_key(purpose.get_ref()) {
                return Err(check.at(
                    purpose,
                    format!(
                        "category {k:?} names the purpose {:?}, which is not declared: add [purposes.{}] with its description",
                        purpose.get_ref(),
                        purpose.get_ref()
                    ),
                ));
            }
            let basis = LegalBasis::parse(basis.get_ref()).ok_or_else(|| {
                check.at(
                    basis,
                    format!(
                        "unknown legal basis {:?}: use one of {}",
                        basis.get_ref(),
                        LegalBasis::ALL.map(LegalBasis::key).join(", ")
                    ),
                )
            })?;
            uses.insert(purpose.get_ref().clone(), basis);
        }
        let retention: Retention = c
            .retention
            .get_ref()
            .parse()
            .map_err(|e| check.at(&c.retention, format!("retention of {k:?}: {e}")))?;
        let aggregate = match &c.aggregate {
            None => None,
            Some(a) if a.get_ref() == "hourly" => {
                if retention == Retention::AccountLifetime {
                    return Err(check.at(
                        a,
                        format!("category {k:?} keeps aggregates after its retention, but it is kept for the account's lifetime: give it a retention period such as \"90d\", or remove `aggregate`"),
                    ));
                }
                Some(Aggregate::Hourly)
            }
            Some(a) => {
                return Err(check.at(
                    a,
                    format!(
                        "aggregate of {k:?}: {:?} is not known: the only aggregate is \"hourly\" (per key and hour: count, minimum, maximum, mean)",
                        a.get_ref()
                    ),
                ));
            }
        };
        categories.insert(
            k.clone(),
            Category {
                description: check.text(&c.description, &format!("description of {k:?}"))?,
                source: check.text(&c.source, &format!("source of {k:?}"))?,
                purposes: uses,
                retention,
                aggregate,
            },
        );
    }

    for (needed, what) in COLLECTED_BY_THINGSAFE {
        let covered = categories
            .keys()
            .any(|k| *needed == k || needed.starts_with(&format!("{k}.")));
        if !covered {
            return Err(check.at(
                &raw.categories,
                format!(
                    "the policy does not declare the data category {needed:?}: Thingsafe collects {what}; add [categories.\"{needed}\"]"
                ),
            ));
        }
    }

    let mut processors: Vec<Processor> = Vec::new();
    for p in &raw.processors {
        let p = p.get_ref();
        let name = check.text(&p.name, "processor name")?;
        if processors.iter().any(|q| q.name == name) {
            return Err(check.at(&p.name, format!("processor {name:?} is declared twice")));
        }
        let code = p.country.get_ref().trim();
        let Some(_) = country_name(code) else {
            return Err(check.at(
                &p.country,
                format!(
                    "processor {name:?}: unknown country {code:?}: use an ISO 3166-1 alpha-2 code such as \"IE\" or \"US\""
                ),
            ));
        };
        let safeguards = p
            .safeguards
            .as_ref()
            .map(|s| check.text(s, &format!("safeguards of processor {name:?}")))
            .transpose()?;
        if safeguards.is_none() && !in_eea(code) {
            return Err(check.at(
                &p.country,
                format!(
                    "processor {name:?} is in {code}, outside the EEA: state the transfer safeguards in `safeguards` (GDPR Art. 45-46: an adequacy decision, standard contractual clauses, ...)"
                ),
            ));
        }
        let mut received = Vec::new();
        for c in p.categories.get_ref() {
            if !categories.contains_key(c.get_ref()) {
                return Err(check.at(
                    c,
                    format!(
                        "processor {name:?} receives {:?}, a data category the policy does not declare: declare it under [categories] or remove it here",
                        c.get_ref()
                    ),
                ));
            }
            if received.contains(c.get_ref()) {
                return Err(check.at(
                    c,
                    format!("processor {name:?} lists {:?} twice", c.get_ref()),
                ));
            }
            received.push(c.get_ref().clone());
        }
        if received.is_empty() {
            return Err(check.at(
                &p.categories,
                format!("processor {name:?} receives no data category: list what it receives"),
            ));
        }
        received.sort();
        let notify_url = p
            .notify_url
            .as_ref()
            .map(|u| check_notify_url(u.get_ref(), &name).map_err(|e| check.at(u, e)))
            .transpose()?;
        processors.push(Processor {
            service: check.text(&p.service, &format!("service of processor {name:?}"))?,
            name,
            country: code.to_string(),
            categories: received,
            safeguards,
            notify_url,
        });
    }
    processors.sort_by(|a, b| a.name.cmp(&b.name));

    let mut records = BTreeMap::new();
    for (key, record) in &raw.records {
        let k = key.get_ref();
        let Some((_, _, min_hours, why)) = RECORDS.iter().find(|(name, ..)| name == k) else {
            return Err(check.at(
                key,
                format!(
                    "unknown record {k:?}: the records kept are {}",
                    RECORDS
                        .iter()
                        .map(|(n, ..)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let r = record.get_ref();
        let retention: Retention = r
            .retention
            .get_ref()
            .parse()
            .map_err(|e| check.at(&r.retention, format!("retention of record {k:?}: {e}")))?;
        if let Retention::For(period) = retention
            && period.hours() < *min_hours
        {
            return Err(check.at(
                &r.retention,
                format!(
                    "retention of record {k:?}: {period} is too short: keep it at least {} days, because {why}",
                    min_hours / 24
                ),
            ));
        }
        records.insert(
            k.clone(),
            Record {
                description: check.text(&r.description, &format!("description of record {k:?}"))?,
                retention,
            },
        );
    }

    Ok(Policy {
        records,
        controller,
        dpo,
        minimum_age,
        request_deadline,
        automated_decision_making,
        cookies,
        purposes,
        categories,
        processors,
    })
}

/// A processor's `notify_url`: an absolute http or https URL with a host.
fn check_notify_url(url: &str, processor: &str) -> Result<String, String> {
    let url = url.trim();
    let bad = |why: &str| {
        format!(
            "processor {processor:?}: notify_url {url:?} {why}: use an http(s) URL such as \"https://processor.example/gdpr/notices\""
        )
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("is not an http or https URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
        return Err(bad("has no host, or credentials in it"));
    }
    if url.contains(char::is_whitespace) {
        return Err(bad("contains spaces"));
    }
    Ok(url.to_string())
}

// --- taxonomies ------------------------------------------------------------------------

/// The label for people of a fideslang data category.
pub fn category_label(key: &str) -> &'static str {
    DATA_CATEGORIES
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("Personal data", |(_, label)| label)
}

/// The label for people of a fideslang data use.
pub fn data_use_label(key: &str) -> &'static str {
    DATA_USES
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("Other", |(_, label)| label)
}

/// The English short name of an ISO 3166-1 alpha-2 country code.
pub fn country_name(code: &str) -> Option<&'static str> {
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    COUNTRIES
        .lines()
        .find(|line| line.starts_with(code) && line.as_bytes().get(2) == Some(&b' '))
        .map(|line| &line[3..])
}

/// Whether the country is in the European Economic Area (GDPR applies; no transfer
/// safeguards needed).
pub fn in_eea(code: &str) -> bool {
    const EEA: &[&str] = &[
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
        "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
    ];
    EEA.contains(&code)
}

/// fideslang 3.2's data categories (current ones), with labels for people.
pub const DATA_CATEGORIES: &[(&str, &str)] = &[
    ("system", "System data"),
    ("system.authentication", "Authentication data"),
    ("system.operations", "Operations data"),
    ("user", "Personal data"),
    ("user.account", "Account information"),
    ("user.account.username", "User name"),
    ("user.authorization", "Authorization information"),
    ("user.authorization.biometrics", "Biometric credentials"),
    (
        "user.authorization.credentials",
        "Password and sign-in credentials",
    ),
    ("user.authorization.password", "Password"),
    ("user.behavior", "Observed behaviour"),
    ("user.behavior.browsing_history", "Browsing history"),
    ("user.behavior.media_consumption", "Media consumption"),
    ("user.behavior.purchase_history", "Purchase history"),
    ("user.behavior.search_history", "Search history"),
    ("user.biometrics", "Biometric data"),
    ("user.biometrics.fingerprint", "Fingerprint"),
    ("user.biometrics.retinal", "Retina scan"),
    ("user.biometrics.voice", "Voice recording"),
    ("user.children", "Children's data"),
    (
        "user.children.children_under_thirteen",
        "Data of children under 13",
    ),
    (
        "user.children.thirteen_to_sixteen",
        "Data of children aged 13 to 16",
    ),
    ("user.contact", "Contact details"),
    ("user.contact.address", "Postal address"),
    ("user.contact.address.city", "City"),
    ("user.contact.address.country", "Country"),
    ("user.contact.address.mailing_address", "Mailing address"),
    ("user.contact.address.postal_code", "Postal code"),
    ("user.contact.address.state", "State or region"),
    ("user.contact.address.street", "Street address"),
    ("user.contact.email", "Email address"),
    ("user.contact.fax_number", "Fax number"),
    ("user.contact.phone_number", "Phone number"),
    ("user.contact.social_url", "Website or social media profile"),
    ("user.content", "Your content"),
    ("user.content.private", "Private content"),
    ("user.content.public", "Public content"),
    ("user.content.self_image", "Photos of you"),
    ("user.criminal_history", "Criminal history"),
    ("user.demographic", "Demographic data"),
    ("user.demographic.age_range", "Age range"),
    (
        "user.demographic.citizenship_or_immigration_status",
        "Citizenship or immigration status",
    ),
    ("user.demographic.date_of_birth", "Date of birth"),
    ("user.demographic.gender", "Gender"),
    ("user.demographic.language", "Language"),
    ("user.demographic.marital_status", "Marital status"),
    (
        "user.demographic.philosophical_belief",
        "Philosophical beliefs",
    ),
    ("user.demographic.political_opinion", "Political opinions"),
    ("user.demographic.profile", "Profile and preferences"),
    (
        "user.demographic.protected_classifications",
        "Protected characteristics",
    ),
    ("user.demographic.race_ethnicity", "Racial or ethnic origin"),
    ("user.demographic.religious_belief", "Religious beliefs"),
    ("user.demographic.sexual_orientation", "Sexual orientation"),
    (
        "user.demographic.union_membership",
        "Trade union membership",
    ),
    ("user.device", "Device data"),
    ("user.device.cookie", "Data stored in cookies"),
    ("user.device.cookie_id", "Session and cookie identifiers"),
    ("user.device.device_id", "Device identifiers"),
    ("user.device.ip_address", "IP address"),
    ("user.device.sensor", "Device sensor data"),
    ("user.device.telemetry", "Device telemetry"),
    ("user.financial", "Financial data"),
    ("user.financial.bank_account", "Bank account"),
    ("user.financial.credit_card", "Payment card"),
    ("user.government_id", "Government identifiers"),
    ("user.government_id.birth_certificate", "Birth certificate"),
    (
        "user.government_id.drivers_license_number",
        "Driving licence number",
    ),
    (
        "user.government_id.immigration",
        "Immigration or residency document",
    ),
    (
        "user.government_id.national_identification_number",
        "National identification number",
    ),
    ("user.government_id.passport_number", "Passport number"),
    (
        "user.government_id.vehicle_registration",
        "Vehicle registration",
    ),
    ("user.health", "Health data"),
    ("user.health.baby_formula", "Baby formula use"),
    ("user.health.condition", "Health condition"),
    ("user.health.genetic", "Genetic data"),
    (
        "user.health.insurance_beneficiary_id",
        "Health insurance number",
    ),
    (
        "user.health.maternity_clothing",
        "Maternity clothing purchases",
    ),
    ("user.health.medical_diagnosis", "Medical diagnosis"),
    ("user.health.medications", "Medications"),
    ("user.health.prescriptions", "Prescriptions"),
    ("user.health.record_id", "Medical record number"),
    (
        "user.health.reproductive_or_sexual",
        "Reproductive or sexual health",
    ),
    (
        "user.health.social_psychological_behavioral",
        "Social, psychological or behavioural health",
    ),
    ("user.health.symptons", "Symptoms"),
    ("user.health.treatment", "Medical treatment"),
    ("user.location", "Location"),
    ("user.location.coarse", "Approximate location"),
    ("user.location.precise", "Precise location"),
    ("user.name", "Name"),
    ("user.name.first", "First name"),
    ("user.name.last", "Last name"),
    ("user.payment", "Payment data"),
    ("user.privacy_preferences", "Privacy preferences"),
    ("user.professional_information", "Professional information"),
    ("user.professional_information.job_title", "Job title"),
    ("user.professional_information.workplace", "Workplace"),
    ("user.settings", "Settings and preferences"),
    ("user.social_activity", "Social activity"),
    ("user.unique_id", "Unique identifier"),
    ("user.unique_id.deterministic", "Deterministic identifier"),
    ("user.unique_id.probablistic", "Probabilistic identifier"),
];

/// fideslang categories deprecated in 3.2, and what replaces each.
pub const DEPRECATED_CATEGORIES: &[(&str, &str)] = &[
    ("user.account.settings", "user.settings"),
    (
        "user.authorization.biometric",
        "user.authorization.biometrics",
    ),
    ("user.biometric", "user.biometrics"),
    ("user.biometric.fingerprint", "user.biometrics.fingerprint"),
    ("user.biometric.health", "user.biometrics"),
    ("user.biometric.retinal", "user.biometrics.retinal"),
    ("user.biometric.voice", "user.biometrics.voice"),
    ("user.childrens", "user.children"),
    ("user.contact.organization", "user.contact"),
    ("user.contact.url", "user.contact.social_url"),
    ("user.health_and_medical", "user.health"),
    ("user.health_and_medical.genetic", "user.health.genetic"),
    (
        "user.health_and_medical.insurance_beneficiary_id",
        "user.health.insurance_beneficiary_id",
    ),
    ("user.health_and_medical.record_id", "user.health.record_id"),
    ("user.job_title", "user.professional_information.job_title"),
    ("user.location.imprecise", "user.location.coarse"),
    ("user.sensor", "user.device.sensor"),
    ("user.social", "user.social_activity"),
    ("user.telemetry", "user.device.telemetry"),
    ("user.unique_id.pseudonymous", "user.unique_id"),
    ("user.user_sensor", "user.device.sensor"),
    ("user.workplace", "user.professional_information.workplace"),
];

/// fideslang's data uses (the purposes a policy may declare), with labels for people.
pub const DATA_USES: &[(&str, &str)] = &[
    ("analytics", "Analytics"),
    ("analytics.reporting", "Reporting"),
    (
        "analytics.reporting.ad_performance",
        "Advertising performance",
    ),
    ("analytics.reporting.campaign_insights", "Campaign insights"),
    (
        "analytics.reporting.content_performance",
        "Content performance",
    ),
    ("analytics.reporting.system", "System activity reporting"),
    (
        "analytics.reporting.system.performance",
        "System performance reporting",
    ),
    ("collect", "Collection for a purpose not yet defined"),
    ("employment", "Employment"),
    ("employment.recruitment", "Recruitment"),
    ("essential", "Running the service"),
    ("essential.fraud_detection", "Fraud and misuse detection"),
    ("essential.legal_obligation", "Meeting legal obligations"),
    ("essential.service", "Providing the service"),
    ("essential.service.authentication", "Signing you in"),
    ("essential.service.notifications", "Service notifications"),
    (
        "essential.service.notifications.email",
        "Service notifications by email",
    ),
    (
        "essential.service.notifications.sms",
        "Service notifications by SMS",
    ),
    ("essential.service.operations", "Operating the service"),
    (
        "essential.service.operations.improve",
        "Improving our support",
    ),
    ("essential.service.operations.support", "Support"),
    ("essential.service.payment_processing", "Payment processing"),
    ("essential.service.security", "Security"),
    ("essential.service.upgrades", "Service upgrades"),
    ("finance", "Finance and accounting"),
    ("functional", "Convenience features"),
    ("functional.service", "Service features"),
    ("functional.service.improve", "Improving the service"),
    ("functional.storage", "Storage on your device"),
    (
        "functional.storage.privacy_preferences",
        "Remembering your privacy choices",
    ),
    ("marketing", "Marketing"),
    ("marketing.advertising", "Advertising"),
    ("marketing.advertising.first_party", "Our own advertising"),
    (
        "marketing.advertising.first_party.contextual",
        "Contextual advertising",
    ),
    (
        "marketing.advertising.first_party.targeted",
        "Personalised advertising",
    ),
    (
        "marketing.advertising.frequency_capping",
        "Advertising frequency capping",
    ),
    (
        "marketing.advertising.negative_targeting",
        "Advertising exclusions",
    ),
    (
        "marketing.advertising.profiling",
        "Profiling for advertising",
    ),
    ("marketing.advertising.serving", "Serving advertisements"),
    (
        "marketing.advertising.third_party",
        "Third-party advertising",
    ),
    (
        "marketing.advertising.third_party.targeted",
        "Third-party targeted advertising",
    ),
    ("marketing.communications", "Marketing messages"),
    ("marketing.communications.email", "Marketing email"),
    ("marketing.communications.sms", "Marketing SMS"),
    ("operations", "Business operations"),
    ("personalize", "Personalisation"),
    ("personalize.content", "Personalised content"),
    (
        "personalize.content.limited",
        "Limited content personalisation",
    ),
    (
        "personalize.content.profiled",
        "Content personalised from a profile",
    ),
    (
        "personalize.content.profiling",
        "Profiling for personalisation",
    ),
    ("personalize.system", "System personalisation"),
    ("sales", "Sales"),
    ("third_party_sharing", "Sharing with third parties"),
    (
        "third_party_sharing.legal_obligation",
        "Sharing required by law",
    ),
    ("train_ai_system", "Training AI systems"),
];

/// ISO 3166-1 alpha-2 codes and English short names.
const COUNTRIES: &str = "\
AD Andorra
AE United Arab Emirates
AF Afghanistan
AG Antigua and Barbuda
AI Anguilla
AL Albania
AM Armenia
AO Angola
AQ Antarctica
AR Argentina
AS American Samoa
AT Austria
AU Australia
AW Aruba
AX Åland Islands
AZ Azerbaijan
BA Bosnia and Herzegovina
BB Barbados
BD Bangladesh
BE Belgium
BF Burkina Faso
BG Bulgaria
BH Bahrain
BI Burundi
BJ Benin
BL Saint Barthélemy
BM Bermuda
BN Brunei Darussalam
BO Bolivia
BQ Bonaire, Sint Eustatius and Saba
BR Brazil
BS Bahamas
BT Bhutan
BV Bouvet Island
BW Botswana
BY Belarus
BZ Belize
CA Canada
CC Cocos (Keeling) Islands
CD Congo, The Democratic Republic of the
CF Central African Republic
CG Congo
CH Switzerland
CI Côte d'Ivoire
CK Cook Islands
CL Chile
CM Cameroon
CN China
CO Colombia
CR Costa Rica
CU Cuba
CV Cabo Verde
CW Curaçao
CX Christmas Island
CY Cyprus
CZ Czechia
DE Germany
DJ Djibouti
DK Denmark
DM Dominica
DO Dominican Republic
DZ Algeria
EC Ecuador
EE Estonia
EG Egypt
EH Western Sahara
ER Eritrea
ES Spain
ET Ethiopia
FI Finland
FJ Fiji
FK Falkland Islands (Malvinas)
FM Micronesia, Federated States of
FO Faroe Islands
FR France
GA Gabon
GB United Kingdom
GD Grenada
GE Georgia
GF French Guiana
GG Guernsey
GH Ghana
GI Gibraltar
GL Greenland
GM Gambia
GN Guinea
GP Guadeloupe
GQ Equatorial Guinea
GR Greece
GS South Georgia and the South Sandwich Islands
GT Guatemala
GU Guam
GW Guinea-Bissau
GY Guyana
HK Hong Kong
HM Heard Island and McDonald Islands
HN Honduras
HR Croatia
HT Haiti
HU Hungary
ID Indonesia
IE Ireland
IL Israel
IM Isle of Man
IN India
IO British Indian Ocean Territory
IQ Iraq
IR Iran
IS Iceland
IT Italy
JE Jersey
JM Jamaica
JO Jordan
JP Japan
KE Kenya
KG Kyrgyzstan
KH Cambodia
KI Kiribati
KM Comoros
KN Saint Kitts and Nevis
KP North Korea
KR South Korea
KW Kuwait
KY Cayman Islands
KZ Kazakhstan
LA Laos
LB Lebanon
LC Saint Lucia
LI Liechtenstein
LK Sri Lanka
LR Liberia
LS Lesotho
LT Lithuania
LU Luxembourg
LV Latvia
LY Libya
MA Morocco
MC Monaco
MD Moldova
ME Montenegro
MF Saint Martin (French part)
MG Madagascar
MH Marshall Islands
MK North Macedonia
ML Mali
MM Myanmar
MN Mongolia
MO Macao
MP Northern Mariana Islands
MQ Martinique
MR Mauritania
MS Montserrat
MT Malta
MU Mauritius
MV Maldives
MW Malawi
MX Mexico
MY Malaysia
MZ Mozambique
NA Namibia
NC New Caledonia
NE Niger
NF Norfolk Island
NG Nigeria
NI Nicaragua
NL Netherlands
NO Norway
NP Nepal
NR Nauru
NU Niue
NZ New Zealand
OM Oman
PA Panama
PE Peru
PF French Polynesia
PG Papua New Guinea
PH Philippines
PK Pakistan
PL Poland
PM Saint Pierre and Miquelon
PN Pitcairn
PR Puerto Rico
PS Palestine, State of
PT Portugal
PW Palau
PY Paraguay
QA Qatar
RE Réunion
RO Romania
RS Serbia
RU Russian Federation
RW Rwanda
SA Saudi Arabia
SB Solomon Islands
SC Seychelles
SD Sudan
SE Sweden
SG Singapore
SH Saint Helena, Ascension and Tristan da Cunha
SI Slovenia
SJ Svalbard and Jan Mayen
SK Slovakia
SL Sierra Leone
SM San Marino
SN Senegal
SO Somalia
SR Suriname
SS South Sudan
ST Sao Tome and Principe
SV El Salvador
SX Sint Maarten (Dutch part)
SY Syria
SZ Eswatini
TC Turks and Caicos Islands
TD Chad
TF French Southern Territories
TG Togo
TH Thailand
TJ Tajikistan
TK Tokelau
TL Timor-Leste
TM Turkmenistan
TN Tunisia
TO Tonga
TR Türkiye
TT Trinidad and Tobago
TV Tuvalu
TW Taiwan
TZ Tanzania
UA Ukraine
UG Uganda
UM United States Minor Outlying Islands
US United States
UY Uruguay
UZ Uzbekistan
VA Holy See (Vatican City State)
VC Saint Vincent and the Grenadines
VE Venezuela
VG Virgin Islands, British
VI Virgin Islands, U.S.
VN Vietnam
VU Vanuatu
WF Wallis and Futuna
WS Samoa
YE Yemen
YT Mayotte
ZA South Africa
ZM Zambia
ZW Zimbabwe";

#[cfg(test)]
mod tests {
    use super::*;

    /// The default with `from` replaced by `to`; `from` must occur once.
    fn edited(from: &str, to: &str) -> String {
        assert_eq!(DEFAULT_POLICY.matches(from).count(), 1, "{from}");
        DEFAULT_POLICY.replace(from, to)
    }

    /// The 1-based line of the first occurrence of `needle` in `text`.
    fn line_of(text: &str, needle: &str) -> usize {
        let at = text.find(needle).unwrap_or_else(|| panic!("{needle}"));
        text[..at].matches('\n').count() + 1
    }

    /// Parses `text`, expects a refusal on the line holding `needle`, returns its message.
    fn refused(text: &str, needle: &str) -> String {
        let e = parse(text).expect_err("refused");
        assert_eq!(e.line, line_of(text, needle), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("line {}, column ", e.line)),
            "{e}"
        );
        e.message
    }

    #[test]
    fn the_default_policy_is_valid_and_declares_what_thingsafe_collects() {
        let p = Policy::builtin();
        assert_eq!(p.minimum_age, 16);
        assert_eq!(p.request_deadline.to_string(), "30d");
        assert_eq!(
            p.cookies,
            vec![CookieCategory::Necessary, CookieCategory::Functionality]
        );
        assert_eq!(p.automated_decision_making, None);
        assert!(p.processors.is_empty());
        assert_eq!(p.controller.email, "privacy@example.com");
        assert_eq!(p.dpo.as_ref().unwrap().email, "dpo@example.com");
        for key in [
            "user.contact.email",
            "user.name",
            "user.demographic.date_of_birth",
            "user.device.ip_address",
            "user.device.cookie_id",
            "user.location.precise",
            "user.device.telemetry",
        ] {
            assert!(p.categories.contains_key(key), "{key}");
        }
        let dob = &p.categories["user.demographic.date_of_birth"];
        assert_eq!(dob.purposes["essential"], LegalBasis::LegalObligation);
        assert_eq!(dob.retention, Retention::AccountLifetime);
        assert_eq!(
            p.categories["user.device.ip_address"].retention,
            Retention::For(Period {
                amount: 30,
                unit: Unit::Days
            })
        );
    }

    #[test]
    fn omitted_settings_take_their_defaults() {
        let text = DEFAULT_POLICY
            .replace("minimum_age = 16\n", "")
            .replace("request_deadline = \"30d\"\n", "")
            .replace("automated_decision_making = \"none\"\n", "")
            .replace("cookies = [\"necessary\", \"functionality\"]\n", "");
        let p = parse(&text).unwrap();
        assert_eq!(p.minimum_age, 16);
        assert_eq!(p.request_deadline.to_string(), "30d");
        assert_eq!(p.cookies, vec![CookieCategory::Necessary]);
        assert_eq!(p.automated_decision_making, None);
        // Comments and layout are not content.
        let stated = DEFAULT_POLICY
            .replace(
                "cookies = [\"necessary\", \"functionality\"]",
                "cookies = [\"necessary\"]",
            )
            .replace("# Cookie categories", "# The cookie categories");
        assert_eq!(p.canonical(), parse(&stated).unwrap().canonical());
    }

    #[test]
    fn toml_errors_name_the_line() {
        let text = edited("[purposes.functional]", "[purposes.functional");
        let m = refused(&text, "[purposes.functional");
        assert!(
            m.contains("invalid table header") || m.contains("expected"),
            "{m}"
        );

        let text = edited("minimum_age = 16", "minimum_age = \"sixteen\"");
        let m = refused(&text, "minimum_age =");
        assert!(m.contains("invalid type"), "{m}");

        let text = edited(
            "request_deadline = \"30d\"",
            "request_deadline = \"30d\"\nlanguage = \"en\"",
        );
        let m = refused(&text, "language =");
        assert!(m.contains("unknown field `language`"), "{m}");

        let text = edited(
            "source = \"Your devices.\"\npurposes = { essential = \"contract\" }\nretention = \"account_lifetime\"\n\n[categories.\"user.location.precise\"]",
            "purposes = { essential = \"contract\" }\nretention = \"account_lifetime\"\n\n[categories.\"user.location.precise\"]",
        );
        let m = parse(&text).unwrap_err().message;
        assert!(m.contains("missing field `source`"), "{m}");
    }

    #[test]
    fn unknown_or_deprecated_fideslang_categories_are_refused() {
        let text = edited(
            "[categories.\"user.location.precise\"]",
            "[categories.\"user.location.exact\"]",
        );
        let m = refused(&text, "user.location.exact");
        assert_eq!(
            m,
            "unknown fideslang data category \"user.location.exact\" (under user.location: user.location.coarse, user.location.precise)"
        );
        let text = edited(
            "[categories.\"user.location.precise\"]",
            "[categories.\"user.location.precse\"]",
        );
        let m = refused(&text, "user.location.precse");
        assert_eq!(
            m,
            "unknown fideslang data category \"user.location.precse\" (did you mean \"user.location.precise\"?)"
        );
        let text = edited(
            "[categories.\"user.device.telemetry\"]",
            "[categories.\"user.telemetry\"]",
        );
        let m = refused(&text, "[categories.\"user.telemetry\"]");
        assert_eq!(
            m,
            "the fideslang data category \"user.telemetry\" is deprecated: use \"user.device.telemetry\""
        );
        let text = edited(
            "[categories.\"user.device.telemetry\"]",
            "[categories.\"heartbeat\"]",
        );
        let m = refused(&text, "\"heartbeat\"");
        assert!(
            m.starts_with(
                "unknown fideslang data category \"heartbeat\" (see the fideslang taxonomy"
            ),
            "{m}"
        );
    }

    #[test]
    fn unknown_legal_bases_are_refused() {
        let text = edited(
            "purposes = { essential = \"legitimate_interest\" }",
            "purposes = { essential = \"legitimate_interests\" }",
        );
        let m = refused(&text, "legitimate_interests");
        assert_eq!(
            m,
            "unknown legal basis \"legitimate_interests\": use one of consent, contract, legal_obligation, vital_interest, public_task, legitimate_interest"
        );
    }

    #[test]
    fn purposes_must_be_declared_fideslang_data_uses() {
        let text = edited(
            "purposes = { essential = \"legal_obligation\" }",
            "purposes = { essential = \"legal_obligation\", analytics = \"consent\" }",
        );
        let m = refused(&text, "analytics = \"consent\"");
        assert_eq!(
            m,
            "category \"user.demographic.date_of_birth\" names the purpose \"analytics\", which is not declared: add [purposes.analytics] with its description"
        );
        let text = edited("[purposes.functional]", "[purposes.fun]");
        let m = refused(&text, "[purposes.fun]");
        assert!(
            m.starts_with("unknown fideslang data use \"fun\" for a purpose"),
            "{m}"
        );
        let text = edited("purposes = { functional = \"contract\" }", "purposes = {}");
        let m = refused(&text, "purposes = {}");
        assert!(m.contains("names no purpose"), "{m}");
    }

    #[test]
    fn processors_receive_only_declared_categories_and_say_where_they_are() {
        let ok = format!(
            "{DEFAULT_POLICY}\n[[processors]]\nname = \"Mailer\"\nservice = \"Sends emails.\"\ncountry = \"FR\"\ncategories = [\"user.name\", \"user.contact.email\"]\n"
        );
        let p = parse(&ok).unwrap();
        assert_eq!(
            p.processors[0].categories,
            ["user.contact.email", "user.name"]
        );
        assert_eq!(p.recipients_of("user.name").count(), 1);

        let text = ok.replace(
            "\"user.name\", \"user.contact.email\"]",
            "\"user.name\", \"user.contact.phone_number\"]",
        );
        let m = refused(&text, "\"user.contact.phone_number\"]");
        assert_eq!(
            m,
            "processor \"Mailer\" receives \"user.contact.phone_number\", a data category the policy does not declare: declare it under [categories] or remove it here"
        );
        let text = ok.replace("country = \"FR\"", "country = \"Ireland\"");
        let m = refused(&text, "country = \"Ireland\"");
        assert!(m.contains("unknown country \"Ireland\""), "{m}");
        let text = ok.replace("country = \"FR\"", "country = \"US\"");
        let m = refused(&text, "country = \"US\"\ncategories");
        assert!(
            m.contains("outside the EEA") && m.contains("safeguards"),
            "{m}"
        );
        let text = ok.replace(
            "country = \"FR\"",
            "country = \"US\"\nsafeguards = \"Standard contractual clauses.\"",
        );
        assert_eq!(parse(&text).unwrap().processors[0].country, "US");
        let text = format!(
            "{ok}\n[[processors]]\nname = \"Mailer\"\nservice = \"x\"\ncountry = \"DE\"\ncategories = [\"user.name\"]\n"
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.message, "processor \"Mailer\" is declared twice");
        assert_eq!(e.line, text.lines().count() - 3);
    }

    #[test]
    fn a_processors_notify_url_is_an_http_url_and_a_bad_one_names_its_line() {
        let ok = format!(
            "{DEFAULT_POLICY}\n[[processors]]\nname = \"Mailer\"\nservice = \"Sends emails.\"\ncountry = \"FR\"\ncategories = [\"user.name\"]\nnotify_url = \"https://mailer.example/gdpr\"\n"
        );
        let p = parse(&ok).unwrap();
        assert_eq!(
            p.processors[0].notify_url.as_deref(),
            Some("https://mailer.example/gdpr")
        );
        for bad in [
            "mailto:x@example.com",
            "https://",
            "http:// spaced.example/x",
            "ftp://x",
        ] {
            let text = ok.replace("https://mailer.example/gdpr", bad);
            let e = parse(&text).unwrap_err();
            assert_eq!(e.line, text.lines().count(), "the notify_url line: {e}");
            let m = e.message;
            assert!(
                m.starts_with(&format!("processor \"Mailer\": notify_url {bad:?}")),
                "{m}"
            );
        }
        // Without a notify_url the canonical form (and so the version) is as before.
        let without = ok.replace("notify_url = \"https://mailer.example/gdpr\"\n", "");
        assert!(!parse(&without).unwrap().canonical().json.contains("notify"));
    }

    #[test]
    fn the_minimum_age_is_between_13_and_21() {
        for bad in ["12", "22", "0", "-1"] {
            let text = edited("minimum_age = 16", &format!("minimum_age = {bad}"));
            let m = refused(&text, "minimum_age =");
            assert_eq!(
                m,
                format!(
                    "minimum_age {bad} is out of range: it must be between 13 and 21 (GDPR Art. 8 lets member states set 13 to 16)"
                )
            );
        }
        for good in [13, 21] {
            let text = edited("minimum_age = 16", &format!("minimum_age = {good}"));
            assert_eq!(parse(&text).unwrap().minimum_age, good);
        }
    }

    #[test]
    fn malformed_durations_are_refused() {
        let cases = [
            (
                "\"30 days\"",
                "retention of \"user.device.ip_address\": \"30 days\" is not a duration: write a whole number and a unit (h, d, w, mo or y), such as \"30d\", \"6mo\" or \"1y\", or \"account_lifetime\"",
            ),
            (
                "\"0d\"",
                "retention of \"user.device.ip_address\": \"0d\" is no time at all: a duration must be above 0",
            ),
            (
                "\"6m\"",
                "retention of \"user.device.ip_address\": \"6m\" is ambiguous: write \"6mo\" for months (minutes are not a retention)",
            ),
            (
                "\"d\"",
                "retention of \"user.device.ip_address\": \"d\" is not a duration: write a whole number and a unit (h, d, w, mo or y), such as \"30d\", \"6mo\" or \"1y\", or \"account_lifetime\"",
            ),
            (
                "\"999999d\"",
                "retention of \"user.device.ip_address\": \"999999d\" is too long: at most 100000 of a unit; use a larger unit",
            ),
            (
                "\"forever\"",
                "retention of \"user.device.ip_address\": \"forever\" is not a duration: write a whole number and a unit (h, d, w, mo or y), such as \"30d\", \"6mo\" or \"1y\", or \"account_lifetime\"",
            ),
        ];
        for (bad, message) in cases {
            let text = edited("retention = \"30d\"", &format!("retention = {bad}"));
            assert_eq!(refused(&text, &format!("retention = {bad}")), message);
        }
        for (good, human) in [
            ("12h", "12 hours"),
            ("1y", "1 year"),
            ("6mo", "6 months"),
            ("2w", "2 weeks"),
        ] {
            let text = edited("retention = \"30d\"", &format!("retention = \"{good}\""));
            let r = parse(&text).unwrap().categories["user.device.ip_address"].retention;
            assert_eq!(
                (r.to_string(), r.human()),
                (good.to_string(), human.to_string())
            );
        }
        let text = edited(
            "request_deadline = \"30d\"",
            "request_deadline = \"account_lifetime\"",
        );
        let m = refused(&text, "request_deadline =");
        assert!(
            m.starts_with("request_deadline: \"account_lifetime\" is not a duration"),
            "{m}"
        );
        let text = edited("request_deadline = \"30d\"", "request_deadline = \"2mo\"");
        assert_eq!(
            refused(&text, "request_deadline ="),
            "request_deadline 2mo is too long: at most 30d (GDPR Art. 12(3): one month)"
        );
        let text = edited("request_deadline = \"30d\"", "request_deadline = \"2w\"");
        assert_eq!(parse(&text).unwrap().request_deadline.human(), "2 weeks");
    }

    #[test]
    fn other_mistakes_are_refused_clearly() {
        let text = edited(
            "cookies = [\"necessary\", \"functionality\"]",
            "cookies = [\"necessary\", \"tracking\"]",
        );
        assert_eq!(
            refused(&text, "cookies ="),
            "unknown cookie category \"tracking\": use necessary, performance, functionality or advertising"
        );
        let text = edited(
            "cookies = [\"necessary\", \"functionality\"]",
            "cookies = [\"advertising\", \"necessary\"]",
        );
        assert_eq!(
            parse(&text).unwrap().cookies,
            [CookieCategory::Necessary, CookieCategory::Advertising]
        );
        let text = edited(
            "email = \"privacy@example.com\"",
            "email = \"privacy at example\"",
        );
        let m = refused(&text, "privacy at example");
        assert!(m.starts_with("controller.email: "), "{m}");
        let text = edited(
            "description = \"Positions reported by your devices, where their firmware sends them.\"",
            "description = \"  \"",
        );
        assert_eq!(
            refused(&text, "description = \"  \""),
            "description of \"user.location.precise\" must not be empty"
        );
        // A category Thingsafe collects is missing.
        let start = DEFAULT_POLICY
            .find("[categories.\"user.demographic.date_of_birth\"]")
            .unwrap();
        let end = DEFAULT_POLICY
            .find("[categories.\"user.authorization.credentials\"]")
            .unwrap();
        let text = format!("{}{}", &DEFAULT_POLICY[..start], &DEFAULT_POLICY[end..]);
        let e = parse(&text).unwrap_err();
        assert_eq!(
            e.message,
            "the policy does not declare the data category \"user.demographic.date_of_birth\": Thingsafe collects the birth date asked at sign-up for the age check; add [categories.\"user.demographic.date_of_birth\"]"
        );
        // An ancestor covers it.
        let text = text.replace("[categories.\"user.name\"]", "[categories.\"user.demographic\"]\ndescription = \"Your birth date.\"\nsource = \"You.\"\npurposes = { essential = \"legal_obligation\" }\nretention = \"account_lifetime\"\n\n[categories.\"user.name\"]");
        assert!(parse(&text).is_ok());
        let text = edited(
            "automated_decision_making = \"none\"",
            "automated_decision_making = \"We score devices for fraud.\"",
        );
        assert_eq!(
            parse(&text).unwrap().automated_decision_making.as_deref(),
            Some("We score devices for fraud.")
        );
    }

    #[test]
    fn versions_change_with_content_and_materiality_with_what_is_done() {
        let base = Policy::builtin().canonical();
        assert_eq!(base.sha256.len(), 64);
        assert_eq!(base.sha256, sha256_hex(base.json.as_bytes()));
        // The canonical JSON reads back as the same policy.
        let back: Policy = serde_json::from_str(&base.json).unwrap();
        assert_eq!(back, Policy::builtin());

        let changed = |from: &str, to: &str| parse(&edited(from, to)).unwrap().canonical();
        // Wording and contacts: a new version, not a material one.
        for (from, to) in [
            (
                "email = \"dpo@example.com\"",
                "email = \"dpo@acme.example\"",
            ),
            (
                "Your devices.\"\npurposes = { essential = \"contract\" }\nretention = \"account_lifetime\"\n\n[categories.\"user.location",
                "Your own devices.\"\npurposes = { essential = \"contract\" }\nretention = \"account_lifetime\"\n\n[categories.\"user.location",
            ),
            ("request_deadline = \"30d\"", "request_deadline = \"20d\""),
        ] {
            let c = changed(from, to);
            assert_ne!(c.sha256, base.sha256, "{to}");
            assert_eq!(c.material_sha256, base.material_sha256, "{to}");
        }
        // What is collected, why, on what basis, how long, by whom, from what age.
        for (from, to) in [
            ("retention = \"30d\"", "retention = \"90d\""),
            ("minimum_age = 16", "minimum_age = 13"),
            (
                "purposes = { essential = \"legitimate_interest\" }",
                "purposes = { essential = \"consent\" }",
            ),
            (
                "purposes = { functional = \"contract\" }",
                "purposes = { functional = \"contract\", essential = \"contract\" }",
            ),
            (
                "cookies = [\"necessary\", \"functionality\"]",
                "cookies = [\"necessary\", \"performance\"]",
            ),
            (
                "# [[processors]]\n# name = \"Example Mail Ltd\"",
                "[[processors]]\nname = \"Mailer\"\nservice = \"Mail\"\ncountry = \"IE\"\ncategories = [\"user.name\"]\n# name = \"Example Mail Ltd\"",
            ),
        ] {
            let c = changed(from, to);
            assert_ne!(c.material_sha256, base.material_sha256, "{to}");
        }
    }

    #[test]
    fn countries_and_labels() {
        assert_eq!(country_name("IE"), Some("Ireland"));
        assert_eq!(country_name("US"), Some("United States"));
        assert_eq!(country_name("ie"), None);
        assert_eq!(country_name("XX"), None);
        assert!(in_eea("NO") && !in_eea("GB"));
        assert_eq!(category_label("user.contact.email"), "Email address");
        assert_eq!(data_use_label("essential"), "Running the service");
        // Every label is there once.
        let keys: BTreeSet<_> = DATA_CATEGORIES.iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), DATA_CATEGORIES.len());
        assert!(
            DEPRECATED_CATEGORIES
                .iter()
                .all(|(old, new)| !keys.contains(old) && keys.contains(new))
        );
        assert_eq!(COUNTRIES.lines().count(), 249);
    }

    #[test]
    fn records_say_how_long_each_is_kept_and_a_malformed_one_names_its_line() {
        let p = Policy::builtin();
        let names: Vec<&str> = p.records.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                AUDIT_EVENTS,
                CLOSED_REQUESTS,
                DISCLOSURES,
                LOGIN_HISTORY,
                RPC_CALLS,
                VISITOR_CONSENTS
            ]
        );
        assert_eq!(p.records[LOGIN_HISTORY].retention.to_string(), "90d");
        for (from, to, message) in [
            (
                "[records.login_history]",
                "[records.login_histories]",
                "unknown record \"login_histories\": the records kept are login_history, visitor_consents, closed_requests, audit_events, disclosures, rpc_calls",
            ),
            (
                "retention = \"2y\"\n",
                "retention = \"2 years\"\n",
                "retention of record \"audit_events\": \"2 years\" is not a duration: write a whole number and a unit (h, d, w, mo or y), such as \"30d\", \"6mo\" or \"1y\", or \"account_lifetime\"",
            ),
            (
                "retention = \"1y\"\n",
                "retention = \"91d\"\n",
                "retention of record \"visitor_consents\": 91d is too short: keep it at least 180 days, because the consent cookie lives 180 days, and the choice it carries must be provable while it does (GDPR Art. 7(1))",
            ),
        ] {
            let text = DEFAULT_POLICY.replacen(from, to, 1);
            assert_ne!(text, DEFAULT_POLICY, "{from}");
            let needle = to.trim_end();
            assert_eq!(refused(&text, needle), message);
        }
        let text = edited(
            "for the list.\"\nretention = \"2y\"",
            "for the list.\"\nretention = \"1y\"",
        );
        let e = parse(&text).unwrap_err();
        assert!(
            e.message.contains("record \"disclosures\": 1y is too short: keep it at least 730 days, because the yearly list"),
            "{e}"
        );
        let text = edited(
            "[records.closed_requests]\ndescription = \"Requests",
            "[records.closed_requests]\ncolour = 1\ndescription = \"Requests",
        );
        assert!(refused(&text, "colour = 1").contains("unknown field `colour`"));
        // A policy without records parses (they are then kept until erasure), and giving a
        // record another retention is a material change.
        let cut = DEFAULT_POLICY.find("\n# Records the server keeps").unwrap();
        let bare = parse(&DEFAULT_POLICY[..cut]).unwrap();
        assert!(bare.records.is_empty());
        let longer =
            parse(&DEFAULT_POLICY.replace("retention = \"3y\"", "retention = \"4y\"")).unwrap();
        assert_ne!(
            longer.canonical().material_sha256,
            p.canonical().material_sha256
        );
    }

    #[test]
    fn aggregates_are_hourly_and_only_after_a_retention_period() {
        let telemetry = "[categories.\"user.device.telemetry\"]\ndescription";
        let with = |lines: &str| {
            DEFAULT_POLICY.replace("#   aggregate = ", "#   aggregate: ").replace(
                "source = \"Your devices.\"\npurposes = { essential = \"contract\" }\nretention = \"account_lifetime\"\n\n[categories.\"user.location.precise\"]",
                &format!("source = \"Your devices.\"\npurposes = {{ essential = \"contract\" }}\n{lines}\n\n[categories.\"user.location.precise\"]"),
            )
        };
        assert!(DEFAULT_POLICY.contains(telemetry));
        let p = parse(&with("retention = \"90d\"\naggregate = \"hourly\"")).unwrap();
        assert_eq!(
            p.categories["user.device.telemetry"].aggregate,
            Some(Aggregate::Hourly)
        );
        let text = with("retention = \"90d\"\naggregate = \"daily\"");
        assert_eq!(
            refused(&text, "aggregate = \"daily\""),
            "aggregate of \"user.device.telemetry\": \"daily\" is not known: the only aggregate is \"hourly\" (per key and hour: count, minimum, maximum, mean)"
        );
        let text = with("retention = \"account_lifetime\"\naggregate = \"hourly\"");
        assert!(
            refused(&text, "aggregate = \"hourly\"").contains("kept for the account's lifetime")
        );
        let text = with("retention = \"90d\"\naggregate = 1");
        assert!(parse(&text).is_err());
    }
}
