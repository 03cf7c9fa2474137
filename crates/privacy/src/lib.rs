//! Thingsafe's privacy engine: the rules on top of the store's privacy records.
//!
//! - [`consent`]: what can be consented to (from the policy), the current state from the
//!   append-only ledger, browser opt-out signals (GPC, DNT).
//! - [`export`]: the personal data export, a zip streamed while it is written.
//! - [`receipt`]: the erasure receipt and when the erasure is complete in every backup.
//! - [`retention`]: how long telemetry is kept and the sweeper that deletes what is older.
//! - [`unsubscribe`]: signed one-click unsubscribe links.
//! - [`requests`]: data-subject requests: due dates, extensions, status transitions,
//!   verification codes.
//! - [`recipients`]: notices to processors about rectification, erasure and restriction
//!   (Art. 19).
//! - [`audit`]: what the audit log records and the walk that verifies its hash chain.
//! - [`disclosures`]: recording disclosures to third parties; the yearly list.
//! - [`breaches`]: the breach register's 72-hour clock, affected people, their notice.
//! - [`ropa`]: the records of processing (GDPR Art. 30) and the fideslang data map.
//! - [`classification`]: tenants' telemetry keys labelled with data categories.
//!
//! Persistence is the store's (`Store::record_consents`, `Store::erase_account`, ...);
//! nothing here touches a file or socket except through the store.

pub mod audit;
pub mod breaches;
pub mod classification;
pub mod consent;
pub mod disclosures;
pub mod export;
pub mod receipt;
pub mod recipients;
pub mod requests;
pub mod retention;
pub mod review;
pub mod ropa;
pub mod tenant_export;
pub mod unsubscribe;

/// A time in ms since the epoch as RFC 3339 (UTC), as people and the export read it.
pub(crate) fn rfc3339(ms: thingsafe_core::TimestampMs) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
