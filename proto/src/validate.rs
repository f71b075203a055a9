//! Rules for values users choose. Decoding already bounds their length; these say what a
//! valid value looks like.

use crate::limits::{MAX_USERNAME_BYTES, MIN_PASSWORD_CHARS, MIN_USERNAME_BYTES};

/// Why a user-chosen value is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidValue {
    /// Usernames are 3–32 characters of `a-z`, `0-9`, `_`, `.`, `-`, starting with a letter
    /// or digit.
    #[error(
        "a username is {MIN_USERNAME_BYTES}–{MAX_USERNAME_BYTES} characters of a-z, 0-9, _ . - \
         and starts with a letter or digit"
    )]
    Username,
    /// Passwords have at least [`MIN_PASSWORD_CHARS`] characters.
    #[error("a password has at least {MIN_PASSWORD_CHARS} characters")]
    Password,
    /// A name (room or device) must not be blank or contain control characters.
    #[error("a name must not be blank or contain control characters")]
    Name,
}

/// Checks a username. Usernames are lower-case ASCII so that "exact" lookup is unambiguous.
pub fn username(name: &str) -> Result<(), InvalidValue> {
    let ok_len = (MIN_USERNAME_BYTES..=MAX_USERNAME_BYTES).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    let ok_first = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_first {
        Ok(())
    } else {
        Err(InvalidValue::Username)
    }
}

/// Checks a password's strength floor (its upper bound is a wire limit).
pub fn password(password: &str) -> Result<(), InvalidValue> {
    if password.chars().count() >= MIN_PASSWORD_CHARS {
        Ok(())
    } else {
        Err(InvalidValue::Password)
    }
}

/// Checks a room or device name.
pub fn name(name: &str) -> Result<(), InvalidValue> {
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        Err(InvalidValue::Name)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        for ok in ["bob", "alice_01", "a.b-c", "123"] {
            assert_eq!(username(ok), Ok(()), "{ok}");
        }
        for bad in ["", "ab", "Bob", "_bob", "bob smith", "bøb", &"x".repeat(33)] {
            assert_eq!(username(bad), Err(InvalidValue::Username), "{bad}");
        }
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
        assert!(password("ééééééé").is_err(), "counts characters, not bytes");
    }
}
