//! Signed one-click unsubscribe links: `/api/privacy/unsubscribe?token=…` withdraws a
//! person's marketing consent without signing in. The token is the person's id and a keyed
//! MAC of it, so it cannot be forged for someone else; it never expires (a marketing
//! message may be read late) and does nothing once the person is erased.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use thingsafe_core::UserId;
use thingsafe_vault::Vault;

const DOMAIN: &str = "privacy.unsubscribe";
const MAC_BYTES: usize = 16;

fn mac(vault: &Vault, user: UserId) -> [u8; MAC_BYTES] {
    let full = vault.blind_index(DOMAIN, user.as_uuid().as_bytes());
    full[..MAC_BYTES].try_into().expect("16 of 32 bytes")
}

/// The token for `user`'s unsubscribe link.
pub fn token(vault: &Vault, user: UserId) -> String {
    let mut bytes = user.as_uuid().as_bytes().to_vec();
    bytes.extend_from_slice(&mac(vault, user));
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The person a token was made for, if it is genuine.
pub fn verify(vault: &Vault, token: &str) -> Option<UserId> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    if bytes.len() != 16 + MAC_BYTES {
        return None;
    }
    let user = UserId(uuid::Uuid::from_slice(&bytes[..16]).ok()?);
    let expected = mac(vault, user);
    // Constant-time comparison: a forger learns nothing from the timing.
    let diff = expected
        .iter()
        .zip(&bytes[16..])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (diff == 0).then_some(user)
}
