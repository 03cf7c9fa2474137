//! Tenants label their telemetry keys with the data category they hold (`lat`, `lon` →
//! `user.location.precise`). A labelled key is kept no longer than its category's
//! retention when that is shorter than telemetry's ([`key_cutoffs`], used by the sweeper),
//! and the export names each key's category.

use std::collections::BTreeMap;

use thingsafe_core::TimestampMs;
use thingsafe_core::policy::{Policy, Retention};

/// Most keys one tenant classifies.
pub const MAX_KEYS: usize = 1000;
/// Longest key name (ThingsBoard's telemetry keys are at most 255 characters).
const MAX_KEY_LEN: usize = 255;

/// Checks a tenant's classification; the error names the key and what is wrong.
pub fn check(policy: &Policy, classification: &BTreeMap<String, String>) -> Result<(), String> {
    if classification.len() > MAX_KEYS {
        return Err(format!(
            "{} keys are classified; at most {MAX_KEYS} are accepted",
            classification.len()
        ));
    }
    for (key, category) in classification {
        if key.trim().is_empty() {
            return Err("a telemetry key is empty".into());
        }
        if key.chars().count() > MAX_KEY_LEN {
            return Err(format!(
                "telemetry key {:?}... is longer than {MAX_KEY_LEN} characters",
                key.chars().take(20).collect::<String>()
            ));
        }
        if !category.starts_with("user.") {
            return Err(format!(
                "{key:?}: {category:?} is not a fideslang category of personal data (user.*)"
            ));
        }
        if !policy.categories.contains_key(category) {
            return Err(format!(
                "{key:?}: {category:?} is not declared in the privacy policy; it declares {}",
                declared_categories(policy)
            ));
        }
    }
    Ok(())
}

/// The policy's data categories, for messages: `user.contact.email, user.name, ...`.
pub(crate) fn declared_categories(policy: &Policy) -> String {
    policy
        .categories
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// The keys whose category is kept for less time than telemetry, each with the time
/// before which its points go. `telemetry_cutoff` is the tenant's telemetry cut (if any).
pub fn key_cutoffs(
    policy: &Policy,
    classification: &BTreeMap<String, String>,
    telemetry_cutoff: Option<TimestampMs>,
    now: TimestampMs,
) -> Vec<(String, TimestampMs)> {
    classification
        .iter()
        .filter_map(|(key, category)| {
            let Some(Retention::For(period)) = policy.categories.get(category).map(|c| c.retention)
            else {
                return None;
            };
            let cutoff = now - period.hours() as i64 * 3_600_000;
            telemetry_cutoff
                .is_none_or(|t| cutoff > t)
                .then(|| (key.clone(), cutoff))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn categories_must_be_personal_and_declared() {
        let policy = Policy::builtin();
        assert_eq!(
            check(&policy, &map(&[("lat", "user.location.precise")])),
            Ok(())
        );
        assert_eq!(
            check(&policy, &map(&[("lat", "system.operations")])).unwrap_err(),
            "\"lat\": \"system.operations\" is not a fideslang category of personal data (user.*)"
        );
        assert!(
            check(&policy, &map(&[("hr", "user.health_and_medical")]))
                .unwrap_err()
                .starts_with("\"hr\": \"user.health_and_medical\" is not declared in the privacy policy; it declares user.authorization.credentials")
        );
        assert_eq!(
            check(&policy, &map(&[(" ", "user.location.precise")])).unwrap_err(),
            "a telemetry key is empty"
        );
    }

    #[test]
    fn a_key_follows_its_category_only_when_that_is_shorter() {
        // The built-in policy keeps telemetry for the account's lifetime and IP addresses 30 days.
        let policy = Policy::builtin();
        let day = 24 * 3_600_000;
        let now = 100 * day;
        let classification = map(&[
            ("ip", "user.device.ip_address"),
            ("lat", "user.location.precise"),
        ]);
        assert_eq!(
            key_cutoffs(&policy, &classification, None, now),
            vec![("ip".to_string(), 70 * day)]
        );
        // A tenant keeping telemetry 10 days already cuts sooner than 30 days.
        assert_eq!(
            key_cutoffs(&policy, &classification, Some(90 * day), now),
            vec![]
        );
        assert_eq!(
            key_cutoffs(&policy, &classification, Some(60 * day), now),
            vec![("ip".to_string(), 70 * day)]
        );
    }
}
