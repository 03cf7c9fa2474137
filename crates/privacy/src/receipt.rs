//! The erasure receipt: what was erased, when, how, what is kept and why, and from when no
//! copy anywhere can give the data back. It names no personal data: the person's random
//! account id is the only link, so they can show the receipt to anyone.

use serde_json::{Value, json};
use thingsafe_core::TimestampMs;
use thingsafe_store::Erasure;

use crate::rfc3339;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The latest time a key backup can still hold a key destroyed at `erased_ms`, when the
/// existing key backups are not known: one made just before the erasure is deleted
/// `keep_days` later.
pub fn key_backups_expire_bound(erased_ms: TimestampMs, keep_days: u32) -> TimestampMs {
    erased_ms + i64::from(keep_days) * DAY_MS
}

/// The receipt for `erasure`: key backups are kept `key_backup_keep_days`, and the last one
/// that may hold a destroyed key is deleted at `key_backups_expire_ms` (the erasure time
/// when none exists).
pub fn receipt(
    erasure: &Erasure,
    key_backup_keep_days: u32,
    key_backups_expire_ms: TimestampMs,
) -> Value {
    let expires = key_backups_expire_ms.max(erasure.erased_ms);
    let how = "its data key was destroyed (crypto-shredding): every copy, in the database and in every backup, became unreadable at that moment; the unreadable rows are then deleted in the background";
    let mut erased = vec![
        json!({"what": "Your account: email address, first and last name, birth date and password hash", "how": how}),
        json!({"what": "Your consents and their history, and your sessions (you are signed out everywhere)", "how": how}),
    ];
    if erasure.tenant.is_some() {
        erased.push(json!({
            "what": format!(
                "Your organisation, as you were its last administrator: {} device(s) with their names, access tokens, telemetry and attributes; {} customer(s); {} other user account(s)",
                erasure.devices, erasure.customers, erasure.other_users
            ),
            "how": how,
        }));
    }
    json!({
        "receiptId": erasure.id,
        "accountId": erasure.user,
        "erasedTime": erasure.erased_ms,
        "erasedAt": rfc3339(erasure.erased_ms),
        "erased": erased,
        "kept": [
            {
                "what": "This receipt: your account's random id, the time of the erasure and the counts above",
                "why": "to show that your request was carried out (GDPR Art. 5(2), accountability); it contains nothing that identifies you",
            }
        ],
        "destroyedKeys": erasure.destroyed_keys,
        "backups": {
            "dataBackups": "Backups of the database hold your data only sealed with the destroyed key: restoring one gives nothing back.",
            "keyBackupsKeepDays": key_backup_keep_days,
            "keyBackupsExpireAt": rfc3339(expires),
            "completeEverywhereAt": rfc3339(expires),
            "explained": if expires > erasure.erased_ms {
                format!(
                    "Backups of the key store are kept {key_backup_keep_days} days; the last one that may hold your key is deleted by {}. From then on your data cannot be recovered from any copy.",
                    rfc3339(expires)
                )
            } else {
                "No backup of the key store holds your key: your data cannot be recovered from any copy from now on.".to_string()
            },
        },
    })
}
