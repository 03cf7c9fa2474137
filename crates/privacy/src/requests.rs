//! The rules of data-subject requests (GDPR Art. 12): the due date from the policy's
//! request deadline, one extension by up to two further months with a reason (Art. 12(3)),
//! the status transitions RECEIVED → VERIFIED → IN_PROGRESS → COMPLETED | REJECTED, and
//! the verification code of requests from people without an account.

use thingsafe_core::policy::Period;
use thingsafe_core::{TimestampMs, UserId};
use thingsafe_store::{PrivacyRequest, RequestEvent, RequestStatus, RequestUpdate};

const HOUR_MS: i64 = 60 * 60 * 1000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Art. 12(3): "extended by two further months where necessary".
pub const MAX_EXTENSION_DAYS: u32 = 60;
/// "Due soon" in the administrators' queue: within a week.
pub const DUE_SOON_MS: i64 = 7 * DAY_MS;
/// How long an emailed verification code works.
pub const CODE_TTL_MS: i64 = 30 * 60 * 1000;
/// How long the requester of a closed no-account request stays readable (to answer
/// follow-up questions and show the answer was given); then the request's own key is
/// destroyed. The record of the request (kind, dates, trail) stays.
pub const CLOSED_REQUEST_READABLE_MS: i64 = 90 * DAY_MS;
/// Wrong codes accepted before the request can no longer be verified.
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// When a request made at `created_ms` must be answered.
pub fn due_ms(created_ms: TimestampMs, deadline: &Period) -> TimestampMs {
    created_ms + deadline.hours() as i64 * HOUR_MS
}

/// A six-digit verification code.
pub fn verification_code() -> String {
    use rand::Rng;
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}

/// What an administrator does to a request.
#[derive(Clone, Debug)]
pub enum Action {
    /// Take it on (or hand it to someone): VERIFIED → IN_PROGRESS.
    Assign(UserId),
    /// Art. 12(3): once, by 1 to 60 days, with the reason the person is told.
    Extend {
        days: u32,
        reason: String,
    },
    Complete {
        note: Option<String>,
    },
    Reject {
        reason: String,
    },
}

fn event(actor: UserId, action: &str, note: Option<String>, now_ms: TimestampMs) -> RequestEvent {
    RequestEvent {
        at_ms: now_ms,
        actor: actor.to_string(),
        action: action.into(),
        note,
    }
}

/// The change `action` makes to `request`, or why it cannot be done (for a 400/409).
pub fn apply(
    request: &PrivacyRequest,
    actor: UserId,
    action: Action,
    now_ms: TimestampMs,
) -> Result<RequestUpdate, String> {
    use RequestStatus::*;
    let status = request.status;
    if status.is_closed() {
        return Err(format!(
            "the request is {} already: a closed request does not change",
            status.as_str()
        ));
    }
    let mut update = RequestUpdate {
        from: status,
        status,
        due_ms: request.due_ms,
        extended: request.extended,
        assignee: request.assignee,
        closed_ms: None,
        event: event(actor, "", None, now_ms),
    };
    match action {
        Action::Assign(to) => {
            if status == Received {
                return Err(
                    "the requester's identity is not verified yet: a request is handled once verified"
                        .into(),
                );
            }
            update.status = InProgress;
            update.assignee = Some(to);
            update.event = event(actor, "ASSIGNED", Some(to.to_string()), now_ms);
        }
        Action::Extend { days, reason } => {
            if request.extended {
                return Err("the deadline was extended already: Art. 12(3) allows one extension of at most two further months".into());
            }
            if !(1..=MAX_EXTENSION_DAYS).contains(&days) {
                return Err(format!(
                    "\"days\" must be between 1 and {MAX_EXTENSION_DAYS} (Art. 12(3): two further months at most)"
                ));
            }
            let reason = reason.trim();
            if reason.is_empty() {
                return Err("\"reason\" is required: the person must be told why the answer takes longer (Art. 12(3))".into());
            }
            update.due_ms = request.due_ms + i64::from(days) * DAY_MS;
            update.extended = true;
            update.event = event(
                actor,
                "EXTENDED",
                Some(format!("{days} days: {reason}")),
                now_ms,
            );
        }
        Action::Complete { note } => {
            if status == Received {
                return Err("the requester's identity is not verified: reject the request, or wait for the verification".into());
            }
            update.status = Completed;
            update.closed_ms = Some(now_ms);
            update.event = event(actor, "COMPLETED", note, now_ms);
        }
        Action::Reject { reason } => {
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(
                    "\"reason\" is required: the person must be told why (Art. 12(4))".into(),
                );
            }
            update.status = Rejected;
            update.closed_ms = Some(now_ms);
            update.event = event(actor, "REJECTED", Some(reason.to_string()), now_ms);
        }
    }
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thingsafe_store::RequestKind;

    fn request(status: RequestStatus) -> PrivacyRequest {
        PrivacyRequest {
            id: uuid::Uuid::new_v4(),
            kind: RequestKind::Access,
            status,
            user: None,
            tenant: None,
            email: None,
            details: None,
            created_ms: 0,
            due_ms: 30 * DAY_MS,
            extended: false,
            assignee: None,
            closed_ms: None,
            events: vec![],
        }
    }

    #[test]
    fn the_due_date_is_the_policys_deadline_after_receipt() {
        let deadline: Period = "30d".parse().unwrap();
        assert_eq!(due_ms(1_000, &deadline), 1_000 + 30 * DAY_MS);
        let deadline: Period = "12h".parse().unwrap();
        assert_eq!(due_ms(0, &deadline), 12 * HOUR_MS);
    }

    #[test]
    fn statuses_move_forward_only_and_closed_requests_stay_closed() {
        let admin = UserId::random();
        let r = request(RequestStatus::Received);
        assert!(apply(&r, admin, Action::Assign(admin), 1).is_err());
        assert!(apply(&r, admin, Action::Complete { note: None }, 1).is_err());
        let rejected = apply(
            &r,
            admin,
            Action::Reject {
                reason: "no such person".into(),
            },
            5,
        )
        .unwrap();
        assert_eq!(rejected.status, RequestStatus::Rejected);
        assert_eq!(rejected.closed_ms, Some(5));

        let r = request(RequestStatus::Verified);
        let assigned = apply(&r, admin, Action::Assign(admin), 1).unwrap();
        assert_eq!(
            (assigned.from, assigned.status),
            (RequestStatus::Verified, RequestStatus::InProgress)
        );
        let done = apply(
            &request(RequestStatus::InProgress),
            admin,
            Action::Complete { note: None },
            9,
        )
        .unwrap();
        assert_eq!(done.status, RequestStatus::Completed);
        for closed in [RequestStatus::Completed, RequestStatus::Rejected] {
            let e = apply(&request(closed), admin, Action::Assign(admin), 1).unwrap_err();
            assert!(e.contains("closed request"), "{e}");
        }
        assert!(
            apply(
                &request(RequestStatus::Verified),
                admin,
                Action::Reject { reason: " ".into() },
                1
            )
            .is_err()
        );
    }

    #[test]
    fn one_extension_of_at_most_two_months_with_a_reason() {
        let admin = UserId::random();
        let r = request(RequestStatus::InProgress);
        let extend = |days, reason: &str| Action::Extend {
            days,
            reason: reason.into(),
        };
        assert!(apply(&r, admin, extend(61, "complex"), 1).is_err());
        assert!(apply(&r, admin, extend(0, "complex"), 1).is_err());
        assert!(apply(&r, admin, extend(30, "  "), 1).is_err());
        let u = apply(&r, admin, extend(60, "many devices to go through"), 1).unwrap();
        assert_eq!(u.due_ms, r.due_ms + 60 * DAY_MS);
        assert!(u.extended);
        assert_eq!(u.status, RequestStatus::InProgress);
        assert_eq!(
            u.event.note.as_deref(),
            Some("60 days: many devices to go through")
        );
        let mut again = r.clone();
        again.extended = true;
        assert!(
            apply(&again, admin, extend(1, "more"), 1)
                .unwrap_err()
                .contains("already")
        );
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..50 {
            let c = verification_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
