//! Password hashing: Argon2id with the argon2 crate's recommended parameters, stored as a
//! PHC string (which carries its salt and parameters).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};

pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2id hashing with a generated salt cannot fail")
        .to_string()
}

/// True when `password` matches the PHC string `stored`. A malformed `stored` never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of one verification, so that a login for an unknown account takes as
/// long as one with a wrong password.
pub fn burn_verification_time(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("thingsafe-timing-equaliser"));
    let _ = verify(password, dummy);
}
