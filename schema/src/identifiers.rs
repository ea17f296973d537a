//! containerd's identifier rule, applied to container ids, namespaces, exec ids and snapshot
//! keys that become directory names. Keeping it strict is what stops `../x` from ever reaching
//! a path join.

/// Longest identifier accepted (containerd's limit).
pub const MAX_LEN: usize = 76;

/// Why an identifier was refused; the caller adds which object it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentifierError {
    Empty,
    TooLong(usize),
    /// Byte offset of the first character that breaks `^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`.
    BadChar(usize),
}

impl std::fmt::Display for IdentifierError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentifierError::Empty => write!(f, "must not be empty"),
            IdentifierError::TooLong(n) => {
                write!(f, "is {n} characters long, the limit is {MAX_LEN}")
            }
            IdentifierError::BadChar(at) => write!(
                f,
                "breaks the identifier rule ^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$ at byte {at}"
            ),
        }
    }
}

/// Checks `s` against containerd's identifier rule.
pub fn validate(s: &str) -> Result<(), IdentifierError> {
    if s.is_empty() {
        return Err(IdentifierError::Empty);
    }
    if s.len() > MAX_LEN {
        return Err(IdentifierError::TooLong(s.len()));
    }
    let mut prev_sep = true; // the first character must be alphanumeric
    for (i, b) in s.bytes().enumerate() {
        let alnum = b.is_ascii_alphanumeric();
        let sep = matches!(b, b'.' | b'_' | b'-');
        if alnum {
            prev_sep = false;
        } else if sep && !prev_sep {
            prev_sep = true;
        } else {
            return Err(IdentifierError::BadChar(i));
        }
    }
    if prev_sep {
        return Err(IdentifierError::BadChar(s.len() - 1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_containerd_identifiers() {
        for ok in ["a", "web", "web-1", "a.b_c-d", "A9", &"x".repeat(76)] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_traversal_separators_and_length() {
        assert_eq!(validate(""), Err(IdentifierError::Empty));
        assert_eq!(validate(&"x".repeat(77)), Err(IdentifierError::TooLong(77)));
        assert_eq!(validate("../x"), Err(IdentifierError::BadChar(0)));
        assert_eq!(validate("a..b"), Err(IdentifierError::BadChar(2)));
        assert_eq!(validate("a/b"), Err(IdentifierError::BadChar(1)));
        assert_eq!(validate("a-"), Err(IdentifierError::BadChar(1)));
        assert_eq!(validate("-a"), Err(IdentifierError::BadChar(0)));
        assert_eq!(validate("a b"), Err(IdentifierError::BadChar(1)));
        assert_eq!(validate("é"), Err(IdentifierError::BadChar(0)));
    }
}
