//! Time-based one-time passwords (RFC 6238) for two-factor sign-in, as authenticator apps
//! expect them: HMAC-SHA-1, 6 digits, 30-second steps, one step of clock skew either way.

use rand::RngCore;
use totp_rs::{Algorithm, TOTP};

const DIGITS: usize = 6;
const STEP_SECS: u64 = 30;
const SKEW_STEPS: u8 = 1;
const SECRET_BYTES: usize = 20;
const ISSUER: &str = "Thingsafe";

/// A new random secret (160 bits, as RFC 4226 recommends).
pub fn generate_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

fn totp(secret: &[u8], account: &str) -> TOTP {
    // The account name may not hold ':' (the otpauth label separator).
    let account = account.replace(':', "_");
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        SKEW_STEPS,
        STEP_SECS,
        secret.to_vec(),
        Some(ISSUER.to_string()),
        account,
    )
    .expect("a 160-bit secret, 6 digits and an issuer without ':' are valid")
}

/// The `otpauth://totp/...` URL an authenticator app reads (usually from a QR code).
pub fn otpauth_url(secret: &[u8], account: &str) -> String {
    totp(secret, account).get_url()
}

/// The secret as base32, for typing into an authenticator by hand.
pub fn secret_base32(secret: &[u8]) -> String {
    totp(secret, "").get_secret_base32()
}

/// The step (30-second period since the epoch) `code` is valid for at `unix_secs`, if any:
/// the caller refuses a step already used, so that a code works once.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "");
    let now = unix_secs / STEP_SECS;
    (now.saturating_sub(u64::from(SKEW_STEPS))..=now + u64::from(SKEW_STEPS))
        .find(|step| t.generate(step * STEP_SECS) == code)
}

/// The code for `unix_secs` (what an authenticator app shows).
pub fn code_at(secret: &[u8], unix_secs: u64) -> String {
    totp(secret, "").generate(unix_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_test_vector_and_the_skew_window() {
        // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits) → 287082 with 6.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59), "287082");
        assert_eq!(matching_step(secret, "287082", 59), Some(1));
        assert_eq!(
            matching_step(secret, " 287082 ", 59 + 30),
            Some(1),
            "one step late"
        );
        assert_eq!(
            matching_step(secret, "287082", 59 + 60),
            None,
            "two steps late"
        );
        for bad in ["", "28708", "2870822", "28708x", "abcdef"] {
            assert_eq!(matching_step(secret, bad, 59), None, "{bad:?}");
        }
    }

    #[test]
    fn the_url_names_the_issuer_and_the_account() {
        let secret = generate_secret();
        assert_eq!(secret.len(), 20);
        let url = otpauth_url(&secret, "ada@example.com");
        assert!(
            url.starts_with("otpauth://totp/Thingsafe:ada%40example.com?"),
            "{url}"
        );
        assert!(
            url.contains(&format!("secret={}", secret_base32(&secret))),
            "{url}"
        );
        assert!(url.contains("issuer=Thingsafe"), "{url}");
    }
}
