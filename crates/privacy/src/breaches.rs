//! The breach register (GDPR Art. 33 and 34): the 72-hour clock for telling the supervisory
//! authority, the people a breach reaches, and what they are told.
//!
//! Telling people is recorded here ([`notify_affected`]); sending the message is the
//! mailer's: it takes [`notice`] for each person [`notify_affected`] returns.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use thingsafe_core::policy::Policy;
use thingsafe_core::{Authority, Device, PageRequest, TenantId, TimestampMs, User, UserId};
use thingsafe_store::records::{Breach, NewBreach};
use thingsafe_store::{Scope, Store, StoreError};

use crate::rfc3339;

/// GDPR Art. 33(1): the authority is told within 72 hours of becoming aware.
pub const NOTIFY_WITHIN_MS: i64 = 72 * 60 * 60 * 1000;

/// A detection time may be this far ahead of the server's clock (clocks differ a little).
const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// Checks a breach before it is recorded; the error says what is wrong.
pub fn check(policy: &Policy, breach: &NewBreach, now: TimestampMs) -> Result<(), String> {
    for (field, text) in [
        ("nature", &breach.nature),
        ("consequences", &breach.consequences),
        ("measures", &breach.measures),
    ] {
        if text.trim().is_empty() {
            return Err(format!(
                "\"{field}\" is empty: GDPR Art. 33(3) asks the {field} of the breach"
            ));
        }
    }
    if breach.categories.is_empty() {
        return Err("\"categories\" is empty: name the data categories the breach concerns".into());
    }
    if let Some(unknown) = breach
        .categories
        .iter()
        .find(|c| !policy.categories.contains_key(*c))
    {
        return Err(format!(
            "\"categories\": {unknown:?} is not a data category of the privacy policy; it declares {}",
            crate::classification::declared_categories(policy)
        ));
    }
    if breach.detected_ms > now + CLOCK_SKEW_MS {
        return Err("\"detectedAt\" is in the future".into());
    }
    Ok(())
}

/// A breach with its clock: `notifyBy`, `overdue`, `hoursLeft`.
pub fn view(breach: &Breach, now: TimestampMs) -> Value {
    let notify_by = breach.detected_ms + NOTIFY_WITHIN_MS;
    let notified = breach.authority_notified_ms;
    let mut v = json!(breach);
    v["detected"] = json!(rfc3339(breach.detected_ms));
    v["notifyByTime"] = json!(notify_by);
    v["notifyBy"] = json!(rfc3339(notify_by));
    v["overdue"] = json!(notified.is_none() && now > notify_by);
    v["hoursLeft"] = match notified {
        Some(_) => Value::Null,
        None => json!(((notify_by - now) as f64 / 3_600_000.0 * 10.0).floor() / 10.0),
    };
    // Art. 33(1): a late notification comes with the reasons for the delay.
    v["notifiedLate"] = json!(notified.is_some_and(|t| t > notify_by));
    v
}

/// A person a breach reaches and which of its categories they have data in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AffectedSubject {
    pub user_id: UserId,
    pub tenant_id: Option<TenantId>,
    pub email: String,
    pub categories: Vec<String>,
}

/// Whether `user` has data in `category`: account data by what the account holds, device
/// data by whether the person sees any device. A category this server cannot tell about
/// counts as held (better one notice too many than one too few).
fn holds(user: &User, sees_devices: bool, category: &str) -> bool {
    match category {
        "user.name" => user.first_name.is_some() || user.last_name.is_some(),
        "user.demographic.date_of_birth" => user.birth_date.is_some(),
        "user.authorization.credentials" => user.activated,
        "user.contact.email" | "user.device.cookie_id" | "user.device.ip_address" => true,
        c if c.starts_with("user.device.") || c.starts_with("user.location.") => sees_devices,
        _ => true,
    }
}

/// Every page of a listing, in order; `list` fetches one page.
macro_rules! all_pages {
    ($request:ident => $list:expr) => {{
        let mut all = Vec::new();
        let mut $request = PageRequest {
            page_size: 1000,
            page: 0,
            text_search: None,
        };
        loop {
            let batch = $list.await?;
            all.extend(batch.data);
            if !batch.has_next {
                break all;
            }
            $request.page += 1;
        }
    }};
}

/// The people of the breach's tenant (of every tenant, for a breach of the installation)
/// whose data falls in its categories.
pub async fn affected_subjects(
    store: &dyn Store,
    breach: &Breach,
) -> thingsafe_store::Result<Vec<AffectedSubject>> {
    let tenants: Vec<TenantId> = match breach.tenant_id {
        Some(t) => vec![t],
        None => {
            let tenants: Vec<thingsafe_core::Tenant> =
                all_pages!(page => store.tenants(&Scope::System, &page));
            tenants.into_iter().map(|t| t.id).collect()
        }
    };
    let mut affected = Vec::new();
    for tenant in tenants {
        // The breach was found through the caller's scope, so its tenant is theirs to reach.
        let scope = Scope::Tenant(tenant);
        let users: Vec<User> = all_pages!(page => store.users(&scope, None, &page));
        let devices: Vec<Device> = all_pages!(page => store.devices(&scope, None, &page));
        let mut devices_of_customer: BTreeMap<_, usize> = BTreeMap::new();
        for d in &devices {
            *devices_of_customer.entry(d.customer_id).or_default() += 1;
        }
        for user in users {
            let sees_devices = match (user.authority, user.customer_id) {
                (Authority::CustomerUser, Some(c)) => devices_of_customer.contains_key(&Some(c)),
                _ => !devices.is_empty(),
            };
            let categories: Vec<String> = breach
                .categories
                .iter()
                .filter(|c| holds(&user, sees_devices, c))
                .cloned()
                .collect();
            if !categories.is_empty() {
                affected.push(AffectedSubject {
                    user_id: user.id,
                    tenant_id: user.tenant_id,
                    email: user.email,
                    categories,
                });
            }
        }
    }
    affected.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(affected)
}

/// The subject of the mail that carries a [`notice`].
pub const NOTICE_SUBJECT: &str = "A personal data breach concerning you";

/// The affected people (GDPR Art. 34) not yet recorded as told of the breach: whom the
/// mailer sends the [`notice`]; each one it reaches is then recorded. Refused when nobody's
/// data falls in the breach's categories.
pub async fn not_yet_notified(
    store: &dyn Store,
    scope: &Scope,
    breach: &Breach,
) -> thingsafe_store::Result<Vec<AffectedSubject>> {
    let affected = affected_subjects(store, breach).await?;
    if affected.is_empty() {
        return Err(StoreError::Invalid(
            "nobody's data falls in this breach's categories: there is no one to notify".into(),
        ));
    }
    let told = store.breach_notifications(scope, breach.id).await?;
    Ok(affected
        .into_iter()
        .filter(|a| !told.iter().any(|t| t.user_id == a.user_id))
        .collect())
}

/// What an affected person is told (GDPR Art. 34(2) with Art. 33(3)(b)-(d)): the nature of
/// the breach, whom to contact, the likely consequences and the measures taken.
pub fn notice(breach: &Breach, policy: &Policy, subject: &AffectedSubject) -> String {
    let contact = policy.dpo.as_ref().unwrap_or(&policy.controller);
    let categories = subject
        .categories
        .iter()
        .map(|c| thingsafe_core::policy::category_label(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "We are writing to tell you about a personal data breach that concerns you.\r\n\r\n\
         What happened: {}\r\n\
         When we found out: {}\r\n\
         Your data concerned: {categories}\r\n\
         What it may mean for you: {}\r\n\
         What we have done and recommend: {}\r\n\r\n\
         Questions: {} <{}>\r\n",
        breach.nature,
        rfc3339(breach.detected_ms),
        breach.consequences,
        breach.measures,
        contact.name,
        contact.email,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breach(detected_ms: i64, notified: Option<i64>) -> Breach {
        Breach {
            id: uuid::Uuid::nil(),
            tenant_id: None,
            nature: "n".into(),
            categories: vec!["user.contact.email".into()],
            approx_subjects: 3,
            consequences: "c".into(),
            measures: "m".into(),
            detected_ms,
            recorded_ms: detected_ms,
            recorded_by: None,
            authority_notified_ms: notified,
            authority_reference: None,
        }
    }

    #[test]
    fn the_72_hour_clock() {
        let hour = 3_600_000;
        let v = view(&breach(0, None), 10 * hour);
        assert_eq!(v["notifyByTime"], 72 * hour);
        assert_eq!(v["hoursLeft"], 62.0);
        assert_eq!(v["overdue"], false);
        let v = view(&breach(0, None), 73 * hour);
        assert_eq!(v["overdue"], true);
        assert_eq!(v["hoursLeft"], -1.0);
        let v = view(&breach(0, Some(80 * hour)), 100 * hour);
        assert_eq!(v["overdue"], false);
        assert_eq!(v["hoursLeft"], Value::Null);
        assert_eq!(v["notifiedLate"], true);
    }

    #[test]
    fn a_breach_says_what_art_33_asks() {
        let policy = Policy::builtin();
        let good = NewBreach {
            tenant: None,
            nature: "A laptop with a database copy was stolen".into(),
            categories: vec!["user.contact.email".into()],
            approx_subjects: 10,
            consequences: "Phishing".into(),
            measures: "Keys rotated".into(),
            detected_ms: 1_000,
            recorded_by: None,
        };
        assert_eq!(check(&policy, &good, 1_000), Ok(()));
        let empty = NewBreach {
            measures: " ".into(),
            ..good.clone()
        };
        assert_eq!(
            check(&policy, &empty, 1_000).unwrap_err(),
            "\"measures\" is empty: GDPR Art. 33(3) asks the measures of the breach"
        );
        let unknown = NewBreach {
            categories: vec!["user.financial".into()],
            ..good.clone()
        };
        assert!(check(&policy, &unknown, 1_000).unwrap_err().starts_with(
            "\"categories\": \"user.financial\" is not a data category of the privacy policy"
        ));
        let future = NewBreach {
            detected_ms: 1_000 + CLOCK_SKEW_MS + 1,
            ..good
        };
        assert_eq!(
            check(&policy, &future, 1_000).unwrap_err(),
            "\"detectedAt\" is in the future"
        );
    }
}
