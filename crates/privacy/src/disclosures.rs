//! The disclosure log: every time a person's data leaves for a processor or third party.
//!
//! Code that sends personal data out (an export of someone else's data, a webhook to a
//! processor, an integration) calls [`record_disclosure`] once per person and send. The
//! person reads theirs (`GET /api/privacy/me/disclosures`, and in their export); an
//! administrator reads the yearly list of recipients and categories that California's
//! "Shine the Light" law (Civil Code §1798.83) asks for ([`yearly_report`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;
use thingsafe_core::policy::Policy;
use thingsafe_core::{TimestampMs, UserId};
use thingsafe_store::records::{Disclosure, DisclosureFilter};
use thingsafe_store::{Scope, Store, StoreError};

use crate::audit::{Audit, action};

/// Records that data of `disclosure.subject` in `disclosure.categories` went to
/// `disclosure.recipient` for `disclosure.purpose` at `disclosure.at_ms`, and audits it;
/// returns what was recorded (categories sorted, without repeats).
/// The categories must be ones the policy declares: a disclosure of something the policy
/// does not name is refused (`StoreError::Invalid`), because the policy would then be
/// wrong about what is collected.
pub async fn record_disclosure(
    store: &dyn Store,
    policy: &Policy,
    mut disclosure: Disclosure,
) -> thingsafe_store::Result<Disclosure> {
    if disclosure.categories.is_empty() {
        return Err(StoreError::Invalid(
            "a disclosure names the data categories that were disclosed".into(),
        ));
    }
    if let Some(unknown) = disclosure
        .categories
        .iter()
        .find(|c| !policy.categories.contains_key(*c))
    {
        return Err(StoreError::Invalid(format!(
            "{unknown:?} is not a data category of the privacy policy: declare it there before disclosing it"
        )));
    }
    if disclosure.recipient.trim().is_empty() || disclosure.purpose.trim().is_empty() {
        return Err(StoreError::Invalid(
            "a disclosure names its recipient and its purpose".into(),
        ));
    }
    disclosure.categories.sort();
    disclosure.categories.dedup();
    let audit = Audit::new(action::DISCLOSURE)
        .tenant(disclosure.tenant_id)
        .target("user", disclosure.subject)
        .details(json!({
            "recipient": disclosure.recipient,
            "purpose": disclosure.purpose,
            "categories": disclosure.categories,
        }));
    store.record_disclosure(disclosure.clone()).await?;
    audit.record(store).await;
    Ok(disclosure)
}

/// What the tenant-wide export holds about each of its people (`tenant_export.rs`).
const TENANT_EXPORT_CATEGORIES: &[&str] = &["user.contact.email", "user.name"];

/// A tenant administrator took the tenant-wide export (`what`: downloaded now, or a kept
/// one): the other people of the tenant had their account details disclosed to them. One
/// disclosure is recorded per person.
pub async fn record_tenant_export(
    store: &dyn Store,
    policy: &Policy,
    admin: &thingsafe_core::User,
    what: &str,
) -> thingsafe_store::Result<()> {
    let scope = Scope::of(admin);
    let categories: Vec<String> = TENANT_EXPORT_CATEGORIES
        .iter()
        .filter(|c| policy.categories.contains_key(**c))
        .map(|c| c.to_string())
        .collect();
    let at_ms = thingsafe_core::now_ms();
    let mut request = thingsafe_core::PageRequest {
        page_size: 1000,
        page: 0,
        text_search: None,
    };
    loop {
        let page = store.users(&scope, None, &request).await?;
        for user in page.data.iter().filter(|u| u.id != admin.id) {
            record_disclosure(
                store,
                policy,
                Disclosure {
                    subject: user.id,
                    tenant_id: user.tenant_id,
                    categories: categories.clone(),
                    recipient: format!("tenant administrator {}", admin.id),
                    purpose: what.to_string(),
                    at_ms,
                },
            )
            .await?;
        }
        if !page.has_next {
            return Ok(());
        }
        request.page += 1;
    }
}

/// One recipient in a year's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub recipient: String,
    /// Declared in the policy as a processor (`processors`), or recorded only.
    pub declared_processor: bool,
    pub categories: BTreeSet<String>,
    pub purposes: BTreeSet<String>,
    /// Disclosures recorded in the year (0 for a declared processor with none recorded).
    pub disclosures: u64,
    /// People whose data it received in the year, as recorded.
    pub subjects: u64,
}

/// The "Shine the Light" list for `year`: every recipient of personal data, with the
/// categories it received: those recorded in the log, and the processors the policy
/// declares (which receive their categories as a matter of course).
pub async fn yearly_report(
    store: &dyn Store,
    scope: &Scope,
    policy: &Policy,
    year: i32,
) -> thingsafe_store::Result<Vec<Recipient>> {
    let (from_ms, to_ms) = year_bounds(year)
        .ok_or_else(|| StoreError::Invalid(format!("{year} is not a year this server knows")))?;
    let log = store
        .disclosures(scope, DisclosureFilter::Between { from_ms, to_ms })
        .await?;
    let mut by_recipient: BTreeMap<String, (Recipient, BTreeSet<UserId>)> = BTreeMap::new();
    let blank = |name: &str| Recipient {
        recipient: name.to_string(),
        declared_processor: false,
        categories: BTreeSet::new(),
        purposes: BTreeSet::new(),
        disclosures: 0,
        subjects: 0,
    };
    for p in &policy.processors {
        let (r, _) = by_recipient
            .entry(p.name.clone())
            .or_insert_with(|| (blank(&p.name), BTreeSet::new()));
        r.declared_processor = true;
        r.categories.extend(p.categories.iter().cloned());
        r.purposes.insert(p.service.clone());
    }
    for d in log {
        let (r, subjects) = by_recipient
            .entry(d.recipient.clone())
            .or_insert_with(|| (blank(&d.recipient), BTreeSet::new()));
        r.categories.extend(d.categories);
        r.purposes.insert(d.purpose);
        r.disclosures += 1;
        subjects.insert(d.subject);
    }
    Ok(by_recipient
        .into_values()
        .map(|(mut r, subjects)| {
            r.subjects = subjects.len() as u64;
            r
        })
        .collect())
}

/// `year`'s first and the next year's first millisecond (UTC).
pub fn year_bounds(year: i32) -> Option<(TimestampMs, TimestampMs)> {
    let start = |y: i32| {
        time::Date::from_calendar_date(y, time::Month::January, 1)
            .ok()
            .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
    };
    Some((start(year)?, start(year.checked_add(1)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_year_is_its_utc_calendar_year() {
        assert_eq!(
            year_bounds(2026),
            Some((1_767_225_600_000, 1_798_761_600_000))
        );
        assert_eq!(year_bounds(i32::MAX), None);
    }
}
