//! GDPR Art. 19: rectification, erasure and restriction are communicated to each
//! recipient (processor) that received the affected data, and the person can learn who
//! they are. The notice names the person by their pseudonymous user id, never by email.

use serde_json::json;
use thingsafe_core::policy::Policy;
use thingsafe_core::{TimestampMs, UserId};
use thingsafe_store::NewNotice;

use crate::rfc3339;

/// What happened to the person's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Rectification,
    Erasure,
    Restriction,
    RestrictionLifted,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Rectification => "rectification",
            Event::Erasure => "erasure",
            Event::Restriction => "restriction",
            Event::RestrictionLifted => "restriction_lifted",
        }
    }
}

/// One notice per processor with a `notify_url` that receives any of `categories` (all the
/// categories it receives, for `None`: an erasure or restriction concerns everything).
pub fn notices(
    policy: &Policy,
    user: UserId,
    event: Event,
    categories: Option<&[&str]>,
    now_ms: TimestampMs,
) -> Vec<NewNotice> {
    policy
        .processors
        .iter()
        .filter_map(|p| {
            let url = p.notify_url.as_ref()?;
            let affected: Vec<&str> = p
                .categories
                .iter()
                .map(String::as_str)
                .filter(|c| categories.is_none_or(|wanted| wanted.contains(c)))
                .collect();
            if affected.is_empty() {
                return None;
            }
            let payload = json!({
                "event": event.as_str(),
                "subject": user.to_string(),
                "categories": affected,
                "time": rfc3339(now_ms),
            });
            Some(NewNotice {
                user,
                processor: p.name.clone(),
                url: url.clone(),
                event: event.as_str().into(),
                payload: payload.to_string(),
            })
        })
        .collect()
}

/// How long to wait before attempt `attempts + 1`: 1 s, 2 s, 4 s, ... at most an hour.
pub fn retry_after_ms(attempts: u32) -> i64 {
    1000i64
        .saturating_mul(1i64 << attempts.min(12))
        .min(60 * 60 * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_processors_with_a_url_that_received_the_data_are_told() {
        let text = format!(
            "{}\n[[processors]]\nname = \"Mailer\"\nservice = \"Sends mail.\"\ncountry = \"FR\"\ncategories = [\"user.contact.email\", \"user.name\"]\nnotify_url = \"http://127.0.0.1:9/n\"\n[[processors]]\nname = \"Host\"\nservice = \"Hosts.\"\ncountry = \"DE\"\ncategories = [\"user.device.telemetry\"]\nnotify_url = \"http://127.0.0.1:9/h\"\n[[processors]]\nname = \"Quiet\"\nservice = \"No URL.\"\ncountry = \"DE\"\ncategories = [\"user.name\"]\n",
            thingsafe_core::policy::DEFAULT_POLICY
        );
        let policy = thingsafe_core::policy::parse(&text).unwrap();
        let user = UserId::random();
        let n = notices(&policy, user, Event::Rectification, Some(&["user.name"]), 0);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].processor, "Mailer");
        let payload: serde_json::Value = serde_json::from_str(&n[0].payload).unwrap();
        assert_eq!(payload["categories"], json!(["user.name"]));
        assert_eq!(payload["subject"], user.to_string());
        assert_eq!(payload["event"], "rectification");
        let all = notices(&policy, user, Event::Erasure, None, 0);
        let names: Vec<_> = all.iter().map(|n| n.processor.as_str()).collect();
        assert_eq!(names, ["Host", "Mailer"]);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        assert_eq!(retry_after_ms(0), 1000);
        assert_eq!(retry_after_ms(1), 2000);
        assert_eq!(retry_after_ms(3), 8000);
        assert_eq!(retry_after_ms(40), 60 * 60 * 1000);
    }
}
