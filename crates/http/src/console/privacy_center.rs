//! The privacy center's parts of the profile page that read the person's own records:
//! their data-subject requests, restriction, the policy versions they accepted, and to whom
//! their data went. The actions (new request, rectification, restriction, objection) are
//! console.js calls to the JSON API.

use thingsafe_core::User;
use thingsafe_store::records::DisclosureFilter;
use thingsafe_store::{
    ConsentSubject, PrivacyRequest, RequestKind, RequestStatus, Scope, StoreError,
};

use super::Time;
use crate::AppState;

/// A kind of request in plain words, and what it asks for.
pub(crate) fn kind_words(kind: RequestKind) -> (&'static str, &'static str) {
    match kind {
        RequestKind::Access => (
            "See my data",
            "a copy of what we hold about you, what we use it for and whom we gave it to",
        ),
        RequestKind::Portability => (
            "Take my data elsewhere",
            "your data in a machine-readable form you can give to another service",
        ),
        RequestKind::Rectification => (
            "Correct my data",
            "we fix something we hold about you that is wrong or incomplete",
        ),
        RequestKind::Erasure => (
            "Erase my data",
            "we delete what we hold about you, unless the law makes us keep it",
        ),
        RequestKind::Restriction => (
            "Pause the use of my data",
            "we keep your data but stop using it until the matter is settled",
        ),
        RequestKind::Objection => (
            "Object to a use of my data",
            "we stop a use of your data you do not agree with",
        ),
    }
}

/// A request's status in plain words.
pub(crate) fn status_words(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Received => "Waiting for the emailed code",
        RequestStatus::Verified => "Received, not started yet",
        RequestStatus::InProgress => "Being handled",
        RequestStatus::Completed => "Done",
        RequestStatus::Rejected => "Refused",
    }
}

pub(crate) struct KindOption {
    pub value: &'static str,
    pub name: &'static str,
    pub meaning: &'static str,
}

pub(crate) fn kind_options() -> Vec<KindOption> {
    RequestKind::ALL
        .iter()
        .map(|k| {
            let (name, meaning) = kind_words(*k);
            KindOption {
                value: k.as_str(),
                name,
                meaning,
            }
        })
        .collect()
}

pub(crate) struct MyRequestRow {
    pub id: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub closed: bool,
    pub made: Time,
    pub due: Time,
    /// The last note of the trail (why it was refused, what was done).
    pub outcome: String,
}

impl MyRequestRow {
    fn of(r: &PrivacyRequest) -> MyRequestRow {
        MyRequestRow {
            id: r.id.to_string(),
            kind: kind_words(r.kind).0,
            status: status_words(r.status),
            closed: r.status.is_closed(),
            made: Time(r.created_ms),
            due: Time(r.due_ms),
            outcome: r
                .events
                .last()
                .filter(|_| r.status.is_closed())
                .and_then(|e| e.note.clone())
                .unwrap_or_default(),
        }
    }
}

pub(crate) struct AcceptedVersion {
    pub version: u32,
    pub when: Time,
    pub how: &'static str,
}

pub(crate) struct RecipientRow {
    pub name: String,
    pub service: String,
    pub country: String,
    pub categories: String,
}

pub(crate) struct DisclosureRow {
    pub recipient: String,
    pub purpose: String,
    pub categories: String,
    pub when: Time,
}

/// What the privacy center shows of the person's own records.
pub(crate) struct PrivacyCenter {
    pub requests: Vec<MyRequestRow>,
    pub kinds: Vec<KindOption>,
    pub restricted_since: Option<Time>,
    /// When the person objected to marketing, if that is their last word on it.
    pub objected_since: Option<Time>,
    pub accepted: Vec<AcceptedVersion>,
    pub recipients: Vec<RecipientRow>,
    pub disclosures: Vec<DisclosureRow>,
}

impl PrivacyCenter {
    pub(crate) async fn of(state: &AppState, me: &User) -> Result<PrivacyCenter, StoreError> {
        let store = &state.store;
        let scope = Scope::of(me);
        let (requests, restricted, history, accepted_now, disclosures) = tokio::try_join!(
            store.requests_of(me.id),
            store.restricted_since(me.id),
            store.consent_history(ConsentSubject::User(me.id)),
            store.accepted_policy_version(me.id),
            store.disclosures(&scope, DisclosureFilter::Subject(me.id)),
        )?;
        // The version accepted at sign-up is on the sign-up entries of the ledger; later
        // ones were accepted after reading a changed policy.
        let mut accepted: Vec<AcceptedVersion> = history
            .iter()
            .filter(|h| h.method == "signup")
            .filter_map(|h| Some((h.policy_version?, h.at_ms)))
            .take(1)
            .map(|(version, at)| AcceptedVersion {
                version,
                when: Time(at),
                how: "when you signed up",
            })
            .collect();
        accepted.extend(
            history
                .iter()
                .filter(|h| h.purpose == "privacy_policy" && h.granted)
                .filter_map(|h| {
                    Some(AcceptedVersion {
                        version: h.policy_version?,
                        when: Time(h.at_ms),
                        how: "after reading the changed policy",
                    })
                }),
        );
        if accepted.is_empty()
            && let Some(version) = accepted_now
        {
            accepted.push(AcceptedVersion {
                version,
                when: Time(me.created_ms),
                how: "when your account was made",
            });
        }
        let recipients = state
            .policy
            .policy
            .processors
            .iter()
            .map(|p| RecipientRow {
                name: p.name.clone(),
                service: p.service.clone(),
                country: p.country.clone(),
                categories: p.categories.join(", "),
            })
            .collect();
        let objected_since = history
            .iter()
            .rfind(|h| h.purpose == "marketing")
            .filter(|h| h.method == thingsafe_privacy::consent::OBJECTION)
            .map(|h| Time(h.at_ms));
        Ok(PrivacyCenter {
            objected_since,
            requests: requests.iter().map(MyRequestRow::of).collect(),
            kinds: kind_options(),
            restricted_since: restricted.map(Time),
            accepted,
            recipients,
            disclosures: disclosures
                .into_iter()
                .rev()
                .map(|d| DisclosureRow {
                    recipient: d.recipient,
                    purpose: d.purpose,
                    categories: d.categories.join(", "),
                    when: Time(d.at_ms),
                })
                .collect(),
        })
    }
}
