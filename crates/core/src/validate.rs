//! Rules for what people send us. Each refusal says what is wrong in words a person
//! understands; the HTTP layer passes the message on unchanged.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            field,
            message: message.into(),
        }
    }
}

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// An email address, trimmed and lower-cased so that lookups are case-insensitive.
pub fn email(raw: &str) -> Result<String, Invalid> {
    let e = raw.trim().to_lowercase();
    let invalid =
        |why: &str| Invalid::new("email", format!("{raw:?} is not an email address: {why}"));
    if e.is_empty() {
        return Err(Invalid::new("email", "an email address is required"));
    }
    if e.len() > 254 {
        return Err(invalid("longer than 254 characters"));
    }
    let Some((local, domain)) = e.rsplit_once('@') else {
        return Err(invalid("it has no @"));
    };
    if local.is_empty() || domain.is_empty() {
        return Err(invalid("something is missing before or after the @"));
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Err(invalid(
            "the domain after the @ needs a dot, as in example.com",
        ));
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains spaces"));
    }
    Ok(e)
}

/// A new password: long enough and not the email address itself.
pub fn new_password(password: &str, email: &str) -> Result<(), Invalid> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(Invalid::new(
            "password",
            format!(
                "the password is too short: it has {chars} characters, at least {MIN_PASSWORD_CHARS} are needed"
            ),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(Invalid::new(
            "password",
            format!("the password is too long: at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    if password.trim().to_lowercase() == email.trim().to_lowercase() {
        return Err(Invalid::new(
            "password",
            "the password must not be the email address",
        ));
    }
    Ok(())
}

/// A birth date in ISO form `YYYY-MM-DD`, not in the future.
pub fn birth_date(raw: &str, today: time::Date) -> Result<time::Date, Invalid> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(raw.trim(), &format).map_err(|e| {
        Invalid::new(
            "birthDate",
            format!("{raw:?} is not a date of the form YYYY-MM-DD ({e})"),
        )
    })?;
    if date > today {
        return Err(Invalid::new("birthDate", "the birth date is in the future"));
    }
    Ok(date)
}

/// A name, title or label: trimmed, not empty, of sensible length and without control
/// characters.
pub fn name(field: &'static str, raw: &str, max_chars: usize) -> Result<String, Invalid> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(Invalid::new(field, format!("{field} must not be empty")));
    }
    if s.chars().count() > max_chars {
        return Err(Invalid::new(
            field,
            format!("{field} is longer than {max_chars} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(s.to_string())
}

/// A device access token chosen by the user: what ThingsBoard accepts (1 to 32 characters,
/// no whitespace).
pub fn access_token(raw: &str) -> Result<String, Invalid> {
    if raw.is_empty() || raw.chars().count() > 32 {
        return Err(Invalid::new(
            "accessToken",
            "an access token has 1 to 32 characters",
        ));
    }
    if raw
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(Invalid::new(
            "accessToken",
            "an access token must not contain spaces, control characters or '/'",
        ));
    }
    Ok(raw.to_string())
}

/// The age in whole years on `today` of someone born on `birth`.
pub fn age_on(birth: time::Date, today: time::Date) -> i32 {
    let mut age = today.year() - birth.year();
    if (today.month() as u8, today.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email("  Alice@Example.COM ").unwrap(), "alice@example.com");
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@.com",
        ] {
            let err = email(bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad}");
        }
        assert!(email("alice").unwrap_err().message.contains("no @"));
    }

    #[test]
    fn weak_passwords_are_refused_with_the_reason() {
        let short = new_password("short", "a@b.co").unwrap_err();
        assert!(short.message.contains("too short"), "{short}");
        assert!(short.message.contains("10"), "{short}");
        let same = new_password("Alice@Example.com", "alice@example.com").unwrap_err();
        assert!(same.message.contains("email"), "{same}");
        assert!(new_password("correct horse battery", "a@b.co").is_ok());
        assert!(new_password(&"x".repeat(2000), "a@b.co").is_err());
    }

    #[test]
    fn birth_dates_parse_strictly() {
        let today = date!(2026 - 11 - 23);
        assert_eq!(
            birth_date("1990-02-01", today).unwrap(),
            date!(1990 - 02 - 01)
        );
        for bad in ["1990-13-01", "01/02/1990", "1990-02-30", "", "yesterday"] {
            assert_eq!(
                birth_date(bad, today).unwrap_err().field,
                "birthDate",
                "{bad}"
            );
        }
        assert!(
            birth_date("2030-01-01", today)
                .unwrap_err()
                .message
                .contains("future")
        );
    }

    #[test]
    fn age_counts_whole_years() {
        let b = date!(2010 - 11 - 24);
        assert_eq!(age_on(b, date!(2026 - 11 - 23)), 15);
        assert_eq!(age_on(b, date!(2026 - 11 - 24)), 16);
    }

    #[test]
    fn names_and_tokens() {
        assert_eq!(name("name", "  Pump 1 ", 255).unwrap(), "Pump 1");
        assert!(name("name", "   ", 255).is_err());
        assert!(name("name", "a\u{0}b", 255).is_err());
        assert!(name("name", &"x".repeat(256), 255).is_err());
        assert!(access_token("A1_b2-c3").is_ok());
        assert!(access_token("").is_err());
        assert!(access_token("has space").is_err());
        assert!(access_token(&"x".repeat(33)).is_err());
    }
}
