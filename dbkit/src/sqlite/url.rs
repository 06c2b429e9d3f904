//! Parsing of `sqlite:` store URLs.

use std::path::PathBuf;

use crate::StoreError;

/// Extracts the file path from `sqlite:PATH` (or `sqlite://PATH`).
///
/// Anything else, and in-memory databases (which cannot be shared between
/// connections or processes), is [`StoreError::UnsupportedUrl`].
pub fn sqlite_path(url: &str) -> Result<PathBuf, StoreError> {
    let rest = url
        .strip_prefix("sqlite:")
        .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() || path.starts_with(':') {
        // In-memory databases cannot be shared between connections/processes.
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sqlite_forms() {
        assert_eq!(
            sqlite_path("sqlite:/tmp/a.db").unwrap(),
            PathBuf::from("/tmp/a.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/a.db").unwrap(),
            PathBuf::from("/tmp/a.db")
        );
        assert_eq!(
            sqlite_path("sqlite:rel.db").unwrap(),
            PathBuf::from("rel.db")
        );
    }

    #[test]
    fn rejects_other_schemes() {
        for url in ["postgres://x/y", "/tmp/a.db", "sqlite:", "sqlite::memory:"] {
            assert!(
                matches!(sqlite_path(url), Err(StoreError::UnsupportedUrl(_))),
                "{url}"
            );
        }
    }
}
