//! Session authentication: HS256 JSON Web Tokens.
//!
//! A token's `sub` claim is the account id; `exp` is mandatory and checked
//! with zero leeway (a token is valid through its `exp` second, refused from
//! the next one); an `nbf` ("not before", RFC 7519 §4.1.5) in the future is
//! refused, also with zero leeway. Only HS256 is accepted, whatever the
//! token header says.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Why a token was refused (or could not be minted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The signature does not match the gateway's secret.
    #[error("token signature is invalid")]
    InvalidSignature,
    /// The token's `exp` is in the past.
    #[error("token has expired")]
    Expired,
    /// The token's `nbf` is in the future.
    #[error("token is not valid yet (its nbf is in the future)")]
    NotYetValid,
    /// The header names an algorithm other than HS256.
    #[error("token algorithm is not HS256")]
    WrongAlgorithm,
    /// A required claim (`sub`, `exp`) is absent or empty.
    #[error("token lacks required claim `{0}`")]
    MissingClaim(String),
    /// The token is not a well-formed JWT.
    #[error("token is malformed: {0}")]
    Malformed(String),
    /// Minting a token failed.
    #[error("cannot mint token: {0}")]
    Mint(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

/// Verifies HS256 session tokens against one shared secret.
#[derive(Clone)]
pub struct JwtAuth {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("key", &"<redacted>")
            .finish()
    }
}

impl JwtAuth {
    /// A verifier for tokens signed with `secret`.
    pub fn new(secret: &[u8]) -> JwtAuth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtAuth {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Verifies `token` and returns its account id (the `sub` claim).
    pub fn verify(&self, token: &str) -> Result<String, AuthError> {
        self.verify_claims(token).map(|c| c.account)
    }

    /// Verifies `token` and returns its account id and expiry.
    pub fn verify_claims(&self, token: &str) -> Result<TokenClaims, AuthError> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(map_err)?;
        if data.claims.sub.is_empty() {
            return Err(AuthError::MissingClaim("sub".into()));
        }
        Ok(TokenClaims {
            account: data.claims.sub,
            expires_at_unix: data.claims.exp,
        })
    }
}

/// The claims of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The account id (`sub`).
    pub account: String,
    /// `exp`, in seconds since the Unix epoch: the token is valid up to and
    /// including this second (zero leeway).
    pub expires_at_unix: u64,
}

impl TokenClaims {
    /// Time from now until the token stops being valid (the end of its `exp` second).
    pub fn remaining(&self) -> Duration {
        let end = Duration::from_secs(self.expires_at_unix.saturating_add(1));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        end.saturating_sub(now)
    }
}

fn map_err(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::InvalidSignature => AuthError::InvalidSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
        // A missing `sub` surfaces as a JSON error because `Claims` requires it.
        ErrorKind::Json(j) if j.to_string().contains("missing field `sub`") => {
            AuthError::MissingClaim("sub".into())
        }
        _ => AuthError::Malformed(e.to_string()),
    }
}

/// Mints an HS256 token for `account_id`, valid for `ttl` from now.
pub fn mint_token(secret: &[u8], account_id: &str, ttl: Duration) -> Result<String, AuthError> {
    if account_id.is_empty() {
        return Err(AuthError::Mint("account id is empty".into()));
    }
    let claims = Claims {
        sub: account_id.to_owned(),
        exp: jsonwebtoken::get_current_timestamp().saturating_add(ttl.as_secs()),
        nbf: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| AuthError::Mint(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret-of-reasonable-length!";

    fn sign<T: Serialize>(alg: Algorithm, claims: &T) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    #[test]
    fn valid_token_yields_sub() {
        let t = mint_token(SECRET, "ACC-1", Duration::from_secs(60)).unwrap();
        assert_eq!(JwtAuth::new(SECRET).verify(&t), Ok("ACC-1".to_string()));
    }

    #[test]
    fn claims_carry_the_expiry() {
        let t = mint_token(SECRET, "ACC-1", Duration::from_secs(60)).unwrap();
        let c = JwtAuth::new(SECRET).verify_claims(&t).unwrap();
        assert_eq!(c.account, "ACC-1");
        let left = c.remaining();
        assert!(
            left > Duration::from_secs(59) && left <= Duration::from_secs(61),
            "{left:?}"
        );
    }

    #[test]
    fn forged_token_rejected() {
        let t = mint_token(b"another-secret", "ACC-1", Duration::from_secs(60)).unwrap();
        assert_eq!(
            JwtAuth::new(SECRET).verify(&t),
            Err(AuthError::InvalidSignature)
        );
    }

    #[test]
    fn expired_token_rejected() {
        let claims = Claims {
            sub: "ACC-1".into(),
            exp: jsonwebtoken::get_current_timestamp() - 1,
            nbf: None,
        };
        let t = sign(Algorithm::HS256, &claims);
        assert_eq!(JwtAuth::new(SECRET).verify(&t), Err(AuthError::Expired));
    }

    #[test]
    fn a_token_not_valid_yet_is_rejected_and_one_valid_now_accepted() {
        let now = jsonwebtoken::get_current_timestamp();
        let early = Claims {
            sub: "ACC-1".into(),
            exp: now + 600,
            nbf: Some(now + 60),
        };
        let auth = JwtAuth::new(SECRET);
        let t = sign(Algorithm::HS256, &early);
        assert_eq!(auth.verify(&t), Err(AuthError::NotYetValid));
        assert!(AuthError::NotYetValid.to_string().contains("nbf"));
        let started = Claims {
            nbf: Some(now.saturating_sub(1)),
            ..early
        };
        assert_eq!(
            auth.verify(&sign(Algorithm::HS256, &started)),
            Ok("ACC-1".to_string())
        );
    }

    #[test]
    fn malformed_tokens_rejected() {
        let auth = JwtAuth::new(SECRET);
        for t in ["", "abc", "a.b.c", "....", "eyJ.eyJ.sig"] {
            assert!(
                matches!(auth.verify(t), Err(AuthError::Malformed(_))),
                "{t:?} -> {:?}",
                auth.verify(t)
            );
        }
    }

    #[test]
    fn alg_none_rejected() {
        let good = mint_token(SECRET, "ACC-1", Duration::from_secs(60)).unwrap();
        let payload = good.split('.').nth(1).unwrap();
        // base64url({"alg":"none","typ":"JWT"})
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(JwtAuth::new(SECRET).verify(&none).is_err());
    }

    #[test]
    fn other_hmac_alg_rejected() {
        let claims = Claims {
            sub: "ACC-1".into(),
            exp: jsonwebtoken::get_current_timestamp() + 60,
            nbf: None,
        };
        let t = sign(Algorithm::HS384, &claims);
        assert_eq!(
            JwtAuth::new(SECRET).verify(&t),
            Err(AuthError::WrongAlgorithm)
        );
    }

    #[test]
    fn missing_sub_rejected() {
        #[derive(Serialize)]
        struct NoSub {
            exp: u64,
        }
        let t = sign(
            Algorithm::HS256,
            &NoSub {
                exp: jsonwebtoken::get_current_timestamp() + 60,
            },
        );
        assert!(matches!(
            JwtAuth::new(SECRET).verify(&t),
            Err(AuthError::MissingClaim(c)) if c == "sub"
        ));
    }

    #[test]
    fn empty_sub_rejected() {
        let claims = Claims {
            sub: String::new(),
            exp: jsonwebtoken::get_current_timestamp() + 60,
            nbf: None,
        };
        let t = sign(Algorithm::HS256, &claims);
        assert!(matches!(
            JwtAuth::new(SECRET).verify(&t),
            Err(AuthError::MissingClaim(_))
        ));
    }

    #[test]
    fn missing_exp_rejected() {
        #[derive(Serialize)]
        struct NoExp {
            sub: String,
        }
        let t = sign(
            Algorithm::HS256,
            &NoExp {
                sub: "ACC-1".into(),
            },
        );
        assert!(JwtAuth::new(SECRET).verify(&t).is_err());
    }

    #[test]
    fn debug_redacts_key() {
        let s = format!("{:?}", JwtAuth::new(SECRET));
        assert!(!s.contains("test-secret"));
    }
}
