//! The admin bearer token and its check.

use axum::http::{header, HeaderMap};

use crate::admin::error::AdminError;

/// The secret that authorizes state-changing admin requests.
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken([redacted])")
    }
}

impl AdminToken {
    /// A token from its text (surrounding whitespace ignored); `None` when empty.
    pub fn new(text: &str) -> Option<AdminToken> {
        let t = text.trim();
        (!t.is_empty()).then(|| AdminToken(t.to_owned()))
    }

    /// Whether `candidate` equals the token, in time independent of where they differ.
    fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}

/// Checks the `Authorization: Bearer` header of a state-changing request.
pub fn authorize(token: Option<&AdminToken>, headers: &HeaderMap) -> Result<(), AdminError> {
    let Some(token) = token else {
        return Err(AdminError::NoTokenConfigured);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if token.matches(p) => Ok(()),
        _ => Err(AdminError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn bearer_token_is_checked() {
        let t = AdminToken::new(" s3cret\n").unwrap();
        assert!(authorize(Some(&t), &headers("Bearer s3cret")).is_ok());
        assert!(matches!(
            authorize(Some(&t), &headers("Bearer s3cre")),
            Err(AdminError::Unauthorized)
        ));
        assert!(matches!(
            authorize(Some(&t), &headers("Bearer s3cretx")),
            Err(AdminError::Unauthorized)
        ));
        assert!(matches!(
            authorize(Some(&t), &HeaderMap::new()),
            Err(AdminError::Unauthorized)
        ));
        assert!(matches!(
            authorize(None, &headers("Bearer s3cret")),
            Err(AdminError::NoTokenConfigured)
        ));
        assert!(AdminToken::new("  ").is_none());
    }
}
