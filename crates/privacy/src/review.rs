//! Asking people to review the privacy policy after a material change: a person who
//! accepted an older version is asked again when any version published since is material
//! (new categories, purposes, legal bases, retention, recipients, minimum age, cookies or
//! automated decisions); wording changes alone are not put in front of them.

use serde::Serialize;
use thingsafe_core::policy::PolicyVersion;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub current_version: u32,
    pub accepted_version: Option<u32>,
    /// A material change was published after the accepted version.
    pub review_needed: bool,
    /// The versions published after the accepted one, oldest first.
    pub since_accepted: Vec<PolicyVersion>,
}

/// What `accepted` (the version the person last accepted) calls for, given every
/// published version.
pub fn review(versions: &[PolicyVersion], accepted: Option<u32>) -> Review {
    let current_version = versions.iter().map(|v| v.version).max().unwrap_or(0);
    let since_accepted: Vec<PolicyVersion> = versions
        .iter()
        .filter(|v| accepted.is_none_or(|a| v.version > a))
        .cloned()
        .collect();
    Review {
        current_version,
        accepted_version: accepted,
        review_needed: since_accepted.iter().any(|v| v.material),
        since_accepted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: u32, material: bool) -> PolicyVersion {
        PolicyVersion {
            version,
            sha256: format!("{version:064}"),
            published_ms: i64::from(version) * 1000,
            material,
        }
    }

    #[test]
    fn only_material_changes_since_the_accepted_version_ask_for_a_review() {
        let versions = [v(1, true), v(2, false), v(3, true), v(4, false)];
        let r = review(&versions, Some(1));
        assert!(r.review_needed);
        assert_eq!(r.current_version, 4);
        assert_eq!(
            r.since_accepted
                .iter()
                .map(|v| v.version)
                .collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert!(
            !review(&versions, Some(3)).review_needed,
            "4 is wording only"
        );
        assert!(!review(&versions, Some(4)).review_needed);
        assert!(review(&versions, None).review_needed, "never accepted any");
    }
}
