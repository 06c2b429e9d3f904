//! LOGIN: token logins, session resumes and the failed-login limits.
//!
//! [`login`] takes one LOGIN request and returns a [`LoginOutcome`] — the
//! session to keep (if any), the answer, and whether the connection must
//! close — which the connection turns into a frame. Nothing here touches a
//! socket.
//!
//! * A token login verifies the JWT and opens a new session, registered in
//!   the session directory until the token's `exp`.
//! * A LOGIN with only a session id resumes that session (on any gateway)
//!   if the directory knows it, with the expiry of the token that opened it.
//! * Failures are limited twice: `max_failed_logins` per connection, and
//!   the per-source [`crate::login_throttle::LoginThrottle`] across
//!   connections (checked before the token is verified; over it the answer
//!   is RATE_LIMITED and the connection closes).
//! * A failed login never touches an existing session.
//! * A connection is one account's: a LOGIN that proves another account
//!   than the connection's session is refused FORBIDDEN and the session
//!   stays as it was (a LOGIN proving the same account renews it, with the
//!   new token's expiry). It is not a failed login: the token was valid.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hts_proto::v1::{Code, LoginRequest, LoginResponse};
use tokio::time::Instant;

use crate::auth::TokenClaims;
use crate::request::{account_matches, verify_login_token, LoginRefusal};
use crate::sessions::Resolved;
use crate::shared::Shared;

/// An authenticated session of one connection.
#[derive(Debug)]
pub(crate) struct Session {
    /// The account every request of the connection runs as.
    pub(crate) account: Arc<str>,
    /// The session id (resumable on any gateway while its token is valid).
    pub(crate) session_id: String,
    /// When the token the session was opened with stops being valid.
    pub(crate) expires_at: Instant,
}

/// What a LOGIN leads to.
#[derive(Debug)]
pub(crate) enum LoginOutcome {
    /// Logged in: keep `session`, answer `response`.
    Opened {
        /// The new session.
        session: Session,
        /// The answer (code OK).
        response: LoginResponse,
    },
    /// Refused: answer `response`, then close the connection if `close`.
    Refused {
        /// The answer (UNAUTHENTICATED or RATE_LIMITED).
        response: LoginResponse,
        /// Whether the connection must close after the answer.
        close: bool,
    },
}

impl LoginOutcome {
    /// The answer's code.
    pub(crate) fn code(&self) -> i32 {
        match self {
            LoginOutcome::Opened { response, .. } | LoginOutcome::Refused { response, .. } => {
                response.code
            }
        }
    }
}

/// Handles one LOGIN from `peer` on connection `conn`, logged in as
/// `current` (if it is), that has failed `failed_logins` times so far
/// (incremented on a failure).
pub(crate) async fn login(
    shared: &Shared,
    conn: u64,
    peer: IpAddr,
    current: Option<&Session>,
    failed_logins: &mut u32,
    req: LoginRequest,
) -> LoginOutcome {
    if let Some(throttle) = &shared.login_throttle {
        if let Err(wait) = throttle.check(peer, std::time::Instant::now()) {
            return throttled(conn, peer, wait);
        }
    }
    let refusal = match authenticate(shared, &req).await {
        Ok((claims, _)) if current.is_some_and(|s| *s.account != *claims.account) => {
            let current = current.map(|s| s.account.to_string()).unwrap_or_default();
            tracing::info!(conn, %current, other = %claims.account, "login as another account refused");
            return LoginOutcome::Refused {
                response: LoginResponse {
                    code: Code::Forbidden as i32,
                    message: format!(
                        "this connection is logged in as {current}; open another connection \
                         to log in as {}",
                        claims.account
                    ),
                    ..LoginResponse::default()
                },
                close: false,
            };
        }
        Ok((claims, session_id)) if account_matches(&req.account_id, &claims.account) => {
            let session = Session {
                account: Arc::from(claims.account.as_str()),
                session_id,
                expires_at: Instant::now() + claims.remaining(),
            };
            tracing::info!(conn, account = %session.account, resumed = req.token.is_empty(), "login");
            let response = LoginResponse {
                code: Code::Ok as i32,
                message: String::new(),
                session_id: session.session_id.clone(),
                ..LoginResponse::default()
            };
            return LoginOutcome::Opened { session, response };
        }
        Ok(_) => LoginRefusal::AccountMismatch.to_string(),
        Err(refusal) => refusal,
    };
    *failed_logins += 1;
    if let Some(throttle) = &shared.login_throttle {
        throttle.record_failure(peer, std::time::Instant::now());
    }
    let close = *failed_logins >= shared.config.max_failed_logins;
    tracing::info!(conn, failures = *failed_logins, reason = %refusal, "login failed");
    LoginOutcome::Refused {
        response: LoginResponse {
            code: Code::Unauthenticated as i32,
            message: if close {
                format!("{refusal}; too many failed logins, closing connection")
            } else {
                refusal
            },
            ..LoginResponse::default()
        },
        close,
    }
}

/// The token claims and session id a LOGIN proves: a token login opens a
/// new session; a login with only a session id resumes that session.
async fn authenticate(
    shared: &Shared,
    req: &LoginRequest,
) -> Result<(TokenClaims, String), String> {
    if req.token.is_empty() && !req.session_id.is_empty() {
        return match shared.sessions.resolve(&req.session_id).await {
            Resolved::Session(claims) => Ok((claims, req.session_id.clone())),
            Resolved::Unknown => Err("unknown or expired session; log in with a token".to_owned()),
            Resolved::Unavailable => {
                Err("session store unavailable; log in with a token".to_owned())
            }
        };
    }
    let claims = verify_login_token(&shared.auth, &req.token).map_err(|e| e.to_string())?;
    let session_id = uuid::Uuid::new_v4().to_string();
    if account_matches(&req.account_id, &claims.account) {
        shared.sessions.register(&session_id, &claims);
    }
    Ok((claims, session_id))
}

/// Refuses a LOGIN from a source over its failed-login limit, without
/// verifying the token; the connection closes.
fn throttled(conn: u64, peer: IpAddr, wait: Duration) -> LoginOutcome {
    // Rounded up: retrying after the announced time must succeed.
    let retry = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    tracing::info!(
        conn,
        peer = %peer,
        retry_after_secs = retry,
        "login refused: too many failed logins from this address"
    );
    LoginOutcome::Refused {
        response: LoginResponse {
            code: Code::RateLimited as i32,
            message: format!(
                "too many failed logins from this address; retry in {retry} s; closing connection"
            ),
            ..LoginResponse::default()
        },
        close: true,
    }
}
