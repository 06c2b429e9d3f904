//! Turning a client frame's body into a request, without I/O.
//!
//! [`decode_request`] is the per-frame step of the connection's read loop
//! that depends only on the frame: pick the protobuf message by `msg_type`
//! and decode it. [`verify_login_token`], [`account_matches`] and [`admit`]
//! are the session checks that follow. They are pure functions so that the fuzz
//! targets (`fuzz/`) exercise exactly the code a connection runs.

use bytes::Bytes;
use hts_proto::v1::{Code, Heartbeat, LoginRequest, PlaceOrderRequest};
use prost::Message;

use crate::auth::{AuthError, JwtAuth, TokenClaims};
use crate::frame::MsgType;
use crate::upstream::BackendRequest;

/// A client frame's body, decoded according to its `msg_type`.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientRequest {
    /// LOGIN.
    Login(LoginRequest),
    /// HEARTBEAT (echoed back unchanged).
    Heartbeat(Heartbeat),
    /// PLACE/CANCEL/QUERY, forwarded to an order-service backend.
    Backend(BackendRequest),
}

/// Why a frame's body is not a request. Always answered with an ERROR
/// frame, code `INVALID_REQUEST`; the connection stays usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// `msg_type` is not one a client may send.
    #[error("unknown msg_type {0}")]
    UnknownType(u16),
    /// `msg_type` is assigned by the wire contract but not served by this
    /// gateway version yet.
    #[error("message type {0} not served by this gateway")]
    NotServed(u16),
    /// The body is not the protobuf message `msg_type` calls for.
    #[error("body is not a {expected}: {source}")]
    BadBody {
        /// The message the body should have been.
        expected: &'static str,
        /// What prost found wrong.
        #[source]
        source: prost::DecodeError,
    },
}

impl RequestError {
    /// The response code a client gets for this error.
    pub fn code(&self) -> Code {
        Code::InvalidRequest
    }
}

fn decode<M: Message + Default>(body: Bytes, expected: &'static str) -> Result<M, RequestError> {
    M::decode(body).map_err(|source| RequestError::BadBody { expected, source })
}

/// Decodes a request frame's `body` as the message `msg_type` calls for.
/// ERROR (255) and unassigned types are [`RequestError::UnknownType`].
pub fn decode_request(msg_type: u16, body: Bytes) -> Result<ClientRequest, RequestError> {
    Ok(match MsgType::from_u16(msg_type) {
        Some(MsgType::Login) => ClientRequest::Login(decode(body, "LoginRequest")?),
        Some(MsgType::Heartbeat) => ClientRequest::Heartbeat(decode(body, "Heartbeat")?),
        Some(MsgType::PlaceOrder) => {
            ClientRequest::Backend(BackendRequest::Place(decode(body, "PlaceOrder request")?))
        }
        Some(MsgType::CancelOrder) => {
            ClientRequest::Backend(BackendRequest::Cancel(decode(body, "CancelOrder request")?))
        }
        Some(MsgType::QueryOrder) => {
            ClientRequest::Backend(BackendRequest::Query(decode(body, "QueryOrder request")?))
        }
        // Pushed by the gateway only.
        Some(MsgType::OrderUpdate | MsgType::Error) | None => {
            return Err(RequestError::UnknownType(msg_type))
        }
        // Assigned by the wire contract; not served by this gateway yet.
        Some(
            MsgType::ReplaceOrder
            | MsgType::MassCancel
            | MsgType::ListOrders
            | MsgType::GetPositions,
        ) => return Err(RequestError::NotServed(msg_type)),
    })
}

/// Why a LOGIN was refused (answered `UNAUTHENTICATED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginRefusal {
    /// The token did not verify.
    #[error("login refused: {0}")]
    Token(#[from] AuthError),
    /// The token or session is valid but for another account than `account_id`.
    #[error("account_id does not match the token or session")]
    AccountMismatch,
}

/// Verifies a LOGIN's token: its claims, or why it is refused.
pub fn verify_login_token(auth: &JwtAuth, token: &str) -> Result<TokenClaims, LoginRefusal> {
    Ok(auth.verify_claims(token)?)
}

/// Whether a LOGIN naming `requested` (empty: whichever account the token or
/// session proves) may log in as the `proven` account.
pub fn account_matches(requested: &str, proven: &str) -> bool {
    requested.is_empty() || requested == proven
}

/// Checks that a PLACE_ORDER names no account other than the session's
/// (`FORBIDDEN` otherwise); an empty `account_id` means the session's.
pub fn check_place_account(
    session_account: &str,
    request: &PlaceOrderRequest,
) -> Result<(), &'static str> {
    if request.account_id.is_empty() || request.account_id == session_account {
        Ok(())
    } else {
        Err("account_id differs from the session's account")
    }
}

/// A backend request the gateway answers itself, with the request's own
/// response type ([`BackendRequest::failure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The response code.
    pub code: Code,
    /// Why.
    pub message: &'static str,
}

/// Decides whether a PLACE/CANCEL/QUERY may go to a backend: the
/// connection must be logged in (`session_account`, else UNAUTHENTICATED),
/// its ids must be short enough to echo
/// ([`BackendRequest::check_id_lengths`], else INVALID_REQUEST), and a PLACE
/// may not name another account (FORBIDDEN). Returns the session's account.
pub fn admit<'a, A>(
    session_account: Option<&'a A>,
    request: &BackendRequest,
) -> Result<&'a A, Refused>
where
    A: AsRef<str> + ?Sized,
{
    let Some(account) = session_account else {
        return Err(Refused {
            code: Code::Unauthenticated,
            message: "log in first",
        });
    };
    request.check_id_lengths().map_err(|message| Refused {
        code: Code::InvalidRequest,
        message,
    })?;
    if let BackendRequest::Place(p) = request {
        check_place_account(account.as_ref(), p).map_err(|message| Refused {
            code: Code::Forbidden,
            message,
        })?;
    }
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::mint_token;
    use hts_proto::v1::{CancelOrderRequest, QueryOrderRequest};
    use std::time::Duration;

    fn body(m: &impl Message) -> Bytes {
        Bytes::from(m.encode_to_vec())
    }

    #[test]
    fn decodes_each_type() {
        let login = LoginRequest {
            account_id: "ACC-1".into(),
            token: "t".into(),
            ..Default::default()
        };
        assert_eq!(
            decode_request(1, body(&login)),
            Ok(ClientRequest::Login(login))
        );
        let hb = Heartbeat {
            sent_at_unix_nanos: 9,
        };
        assert_eq!(
            decode_request(5, body(&hb)),
            Ok(ClientRequest::Heartbeat(hb))
        );
        let place = PlaceOrderRequest {
            request_id: "r".into(),
            ..Default::default()
        };
        assert_eq!(
            decode_request(2, body(&place)),
            Ok(ClientRequest::Backend(BackendRequest::Place(place)))
        );
        let cancel = CancelOrderRequest {
            request_id: "r".into(),
            order_id: "o".into(),
        };
        assert_eq!(
            decode_request(3, body(&cancel)),
            Ok(ClientRequest::Backend(BackendRequest::Cancel(cancel)))
        );
        let query = QueryOrderRequest {
            order_id: "o".into(),
        };
        assert_eq!(
            decode_request(4, body(&query)),
            Ok(ClientRequest::Backend(BackendRequest::Query(query)))
        );
    }

    #[test]
    fn unknown_types_and_bad_bodies_are_invalid_requests() {
        for t in [6u16, 7, 8, 9] {
            let e = decode_request(t, Bytes::new()).unwrap_err();
            assert_eq!(e, RequestError::NotServed(t));
            assert_eq!(e.code(), Code::InvalidRequest);
        }
        for t in [0u16, 16, 254, 255, u16::MAX] {
            let e = decode_request(t, Bytes::new()).unwrap_err();
            assert_eq!(e, RequestError::UnknownType(t));
            assert_eq!(e.code(), Code::InvalidRequest);
            assert_eq!(e.to_string(), format!("unknown msg_type {t}"));
        }
        let garbage = Bytes::from_static(&[0xff, 0xff]);
        for (t, name) in [
            (1, "LoginRequest"),
            (2, "PlaceOrder request"),
            (3, "CancelOrder request"),
            (4, "QueryOrder request"),
            (5, "Heartbeat"),
        ] {
            let e = decode_request(t, garbage.clone()).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("body is not a {name}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn login_checks_token_and_account() {
        let secret = b"request-test-secret";
        let auth = JwtAuth::new(secret);
        let token = mint_token(secret, "ACC-1", Duration::from_secs(60)).unwrap();
        let claims = verify_login_token(&auth, &token).unwrap();
        assert_eq!(claims.account, "ACC-1");
        assert!(account_matches("", &claims.account));
        assert!(account_matches("ACC-1", &claims.account));
        assert!(!account_matches("ACC-2", &claims.account));
        let e = verify_login_token(&auth, "garbage").unwrap_err();
        assert!(matches!(e, LoginRefusal::Token(AuthError::Malformed(_))));
        assert!(e
            .to_string()
            .starts_with("login refused: token is malformed"));
        assert_eq!(
            LoginRefusal::AccountMismatch.to_string(),
            "account_id does not match the token or session"
        );
    }

    #[test]
    fn place_account_must_be_the_sessions() {
        let mut p = PlaceOrderRequest::default();
        assert!(check_place_account("ACC-1", &p).is_ok());
        p.account_id = "ACC-1".into();
        assert!(check_place_account("ACC-1", &p).is_ok());
        p.account_id = "ACC-2".into();
        assert!(check_place_account("ACC-1", &p).is_err());
    }

    #[test]
    fn admit_requires_login_and_own_account() {
        let query = BackendRequest::Query(QueryOrderRequest::default());
        assert_eq!(
            admit::<str>(None, &query).unwrap_err().code,
            Code::Unauthenticated
        );
        assert_eq!(admit(Some("ACC-1"), &query), Ok("ACC-1"));
        let other = BackendRequest::Place(PlaceOrderRequest {
            account_id: "ACC-2".into(),
            ..Default::default()
        });
        assert_eq!(
            admit::<str>(None, &other).unwrap_err().code,
            Code::Unauthenticated
        );
        assert_eq!(
            admit(Some("ACC-1"), &other).unwrap_err().code,
            Code::Forbidden
        );
        assert_eq!(admit(Some("ACC-2"), &other), Ok("ACC-2"));
        let long = BackendRequest::Query(QueryOrderRequest {
            order_id: "o".repeat(65),
        });
        assert_eq!(
            admit(Some("ACC-1"), &long).unwrap_err().code,
            Code::InvalidRequest
        );
        assert_eq!(
            admit::<str>(None, &long).unwrap_err().code,
            Code::Unauthenticated
        );
    }
}
