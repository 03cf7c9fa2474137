//! What a person or visitor has consented to, from the ledger and the policy.
//!
//! Only purposes the policy bases on consent, and cookie categories beyond the necessary
//! ones, can be given or withdrawn; everything starts withdrawn (marketing is off unless
//! given). A browser's Global Privacy Control (`Sec-GPC: 1`) or Do Not Track (`DNT: 1`)
//! signal is an opt-out of all of them, recorded in the ledger as a signal.

use std::collections::BTreeMap;

use serde::Serialize;
use thingsafe_core::TimestampMs;
use thingsafe_core::policy::{CookieCategory, Policy};
use thingsafe_store::ConsentRecord;

/// How a cookie category is named in the ledger.
pub const COOKIE_PREFIX: &str = "cookie:";

/// A browser's opt-out signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Signal {
    #[serde(rename = "GPC")]
    Gpc,
    #[serde(rename = "DNT")]
    Dnt,
}

impl Signal {
    /// The signal carried by a request's `Sec-GPC` and `DNT` header values (GPC wins).
    pub fn from_headers(sec_gpc: Option<&str>, dnt: Option<&str>) -> Option<Signal> {
        if sec_gpc.map(str::trim) == Some("1") {
            Some(Signal::Gpc)
        } else if dnt.map(str::trim) == Some("1") {
            Some(Signal::Dnt)
        } else {
            None
        }
    }

    /// The ledger's method for an opt-out by this signal.
    pub fn method(self) -> &'static str {
        match self {
            Signal::Gpc => "signal:GPC",
            Signal::Dnt => "signal:DNT",
        }
    }
}

/// The state of one consentable purpose or cookie category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Current {
    pub purpose: String,
    pub description: String,
    pub granted: bool,
    /// When it was last given or withdrawn (`None`: never asked; withdrawn by default).
    #[serde(rename = "time")]
    pub at_ms: Option<TimestampMs>,
    pub method: Option<String>,
    pub policy_version: Option<u32>,
}

/// Purposes a signed-in person can consent to (the policy's consent-based purposes).
pub fn person_purposes(policy: &Policy) -> Vec<(String, String)> {
    policy
        .consent_purposes()
        .into_iter()
        .map(|p| {
            let description = policy
                .purposes
                .get(p)
                .map(|d| d.description.clone())
                .unwrap_or_default();
            (p.to_string(), description)
        })
        .collect()
}

/// Cookie categories that need consent, as ledger names (`cookie:functionality`).
pub fn cookie_purposes(policy: &Policy) -> Vec<(String, String)> {
    policy
        .consent_cookies()
        .map(|c| {
            (
                format!("{COOKIE_PREFIX}{}", c.key()),
                c.description().to_string(),
            )
        })
        .collect()
}

/// The latest entry of each consentable purpose in `history` (oldest first); purposes no
/// longer in the policy are left out, purposes never touched are withdrawn.
pub fn current(consentable: &[(String, String)], history: &[ConsentRecord]) -> Vec<Current> {
    consentable
        .iter()
        .map(|(purpose, description)| {
            let last = history.iter().rev().find(|c| &c.purpose == purpose);
            Current {
                purpose: purpose.clone(),
                description: description.clone(),
                granted: last.is_some_and(|c| c.granted),
                at_ms: last.map(|c| c.at_ms),
                method: last.map(|c| c.method.clone()),
                policy_version: last.and_then(|c| c.policy_version),
            }
        })
        .collect()
}

/// Checks a requested change against what can be consented to; the error names the
/// unknown purpose and what is allowed.
pub fn check_choice(
    consentable: &[(String, String)],
    choice: &BTreeMap<String, bool>,
) -> Result<(), String> {
    for purpose in choice.keys() {
        if !consentable.iter().any(|(p, _)| p == purpose) {
            let allowed: Vec<&str> = consentable.iter().map(|(p, _)| p.as_str()).collect();
            return Err(if allowed.is_empty() {
                format!(
                    "{purpose:?} cannot be consented to: this server's privacy policy asks consent for nothing"
                )
            } else {
                format!(
                    "{purpose:?} cannot be consented to: the privacy policy asks consent for {}",
                    allowed.join(", ")
                )
            });
        }
    }
    Ok(())
}

/// The ledger entries for a change: only what differs from the current state is recorded.
/// With a signal, grants are refused and every granted purpose is withdrawn by the signal.
pub fn changes(
    current: &[Current],
    choice: &BTreeMap<String, bool>,
    method: &str,
    signal: Option<Signal>,
    policy_version: u32,
    now: TimestampMs,
) -> Vec<ConsentRecord> {
    let entry = |purpose: &str, granted: bool, method: &str| ConsentRecord {
        purpose: purpose.to_string(),
        granted,
        method: method.to_string(),
        policy_version: Some(policy_version),
        at_ms: now,
    };
    match signal {
        Some(signal) => current
            .iter()
            .filter(|c| c.granted || c.at_ms.is_none())
            .map(|c| entry(&c.purpose, false, signal.method()))
            .collect(),
        None => choice
            .iter()
            .filter(|(purpose, granted)| {
                current
                    .iter()
                    .find(|c| &c.purpose == *purpose)
                    .is_none_or(|c| c.granted != **granted || c.at_ms.is_none())
            })
            .map(|(purpose, granted)| entry(purpose, *granted, method))
            .collect(),
    }
}

/// The ledger method of an objection to direct marketing (Art. 21(3)).
pub const OBJECTION: &str = "objection";

/// Whether marketing may reach the person: consent given, and processing not restricted
/// (Art. 18: restricted data is kept, not used).
pub fn marketing_allowed(current: &[Current], restricted: bool) -> bool {
    !restricted
        && current
            .iter()
            .any(|c| c.purpose == "marketing" && c.granted)
}

/// Refuses to grant marketing again over an objection unless the person says so
/// expressly: a form's default must not undo an objection.
pub fn check_objection(current: &[Current], choice: &BTreeMap<String, bool>) -> Result<(), String> {
    let objected = current
        .iter()
        .any(|c| c.purpose == "marketing" && c.method.as_deref() == Some(OBJECTION));
    if objected && choice.get("marketing") == Some(&true) {
        return Err("You objected to marketing: to receive it again, send \"withdrawObjection\": true with \"marketing\": true".into());
    }
    Ok(())
}

/// The cookie categories a visitor's choice allows (necessary always).
pub fn allowed_cookies(policy: &Policy, current: &[Current]) -> Vec<CookieCategory> {
    policy
        .cookies
        .iter()
        .copied()
        .filter(|c| {
            *c == CookieCategory::Necessary
                || current
                    .iter()
                    .any(|s| s.granted && s.purpose == format!("{COOKIE_PREFIX}{}", c.key()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::builtin()
    }

    #[test]
    fn the_default_policy_asks_consent_for_marketing_and_the_functionality_cookie() {
        let p = policy();
        let people: Vec<_> = person_purposes(&p).into_iter().map(|(k, _)| k).collect();
        assert_eq!(people, ["marketing"]);
        let cookies: Vec<_> = cookie_purposes(&p).into_iter().map(|(k, _)| k).collect();
        assert_eq!(cookies, ["cookie:functionality"]);
    }

    #[test]
    fn nothing_is_granted_until_given_and_the_last_entry_counts() {
        let purposes = person_purposes(&policy());
        let now = current(&purposes, &[]);
        assert!(!now[0].granted);
        assert_eq!(now[0].at_ms, None);
        let history = vec![
            ConsentRecord {
                purpose: "marketing".into(),
                granted: true,
                method: "form".into(),
                policy_version: Some(1),
                at_ms: 10,
            },
            ConsentRecord {
                purpose: "marketing".into(),
                granted: false,
                method: "unsubscribe_link".into(),
                policy_version: Some(1),
                at_ms: 20,
            },
            ConsentRecord {
                purpose: "retired".into(),
                granted: true,
                method: "form".into(),
                policy_version: Some(1),
                at_ms: 30,
            },
        ];
        let now = current(&purposes, &history);
        assert_eq!(now.len(), 1);
        assert!(!now[0].granted);
        assert_eq!(now[0].method.as_deref(), Some("unsubscribe_link"));
    }

    #[test]
    fn unknown_purposes_are_refused_by_name() {
        let purposes = person_purposes(&policy());
        let choice = BTreeMap::from([("analytics".to_string(), true)]);
        assert_eq!(
            check_choice(&purposes, &choice).unwrap_err(),
            "\"analytics\" cannot be consented to: the privacy policy asks consent for marketing"
        );
    }

    #[test]
    fn a_signal_withdraws_everything_and_grants_nothing() {
        let purposes = person_purposes(&policy());
        let history = vec![ConsentRecord {
            purpose: "marketing".into(),
            granted: true,
            method: "form".into(),
            policy_version: Some(1),
            at_ms: 10,
        }];
        let now = current(&purposes, &history);
        let choice = BTreeMap::from([("marketing".to_string(), true)]);
        let entries = changes(&now, &choice, "api", Some(Signal::Gpc), 1, 99);
        assert_eq!(entries.len(), 1);
        assert!(!entries[0].granted);
        assert_eq!(entries[0].method, "signal:GPC");
        assert_eq!(Signal::from_headers(Some("1"), None), Some(Signal::Gpc));
        assert_eq!(Signal::from_headers(None, Some("1")), Some(Signal::Dnt));
        assert_eq!(Signal::from_headers(Some("0"), Some("0")), None);
    }

    #[test]
    fn only_changes_are_recorded() {
        let purposes = person_purposes(&policy());
        let history = vec![ConsentRecord {
            purpose: "marketing".into(),
            granted: true,
            method: "form".into(),
            policy_version: Some(1),
            at_ms: 10,
        }];
        let now = current(&purposes, &history);
        let same = BTreeMap::from([("marketing".to_string(), true)]);
        assert!(changes(&now, &same, "api", None, 1, 99).is_empty());
        let off = BTreeMap::from([("marketing".to_string(), false)]);
        assert_eq!(changes(&now, &off, "api", None, 1, 99).len(), 1);
    }
}
