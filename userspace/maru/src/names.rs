//! Key and application names.

use crate::error::{Error, Result};

/// Longest name marufs stores, in bytes.
pub const NAME_MAX: usize = 255;

/// Checks that `name` can name a key or an application directory: 1 to 255
/// bytes, no `/`, no NUL, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        "empty"
    } else if name.len() > NAME_MAX {
        "longer than 255 bytes"
    } else if let Some(&c) = name.as_bytes().iter().find(|&&c| c == b'/' || c == 0) {
        // One pass over the bytes (batches validate every name).
        if c == b'/' {
            "contains '/'"
        } else {
            "contains NUL"
        }
    } else if name == "." || name == ".." {
        "reserved"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_string(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("k").is_ok());
        assert!(validate_name(&"x".repeat(255)).is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"x".repeat(256)).is_err());
    }
}
