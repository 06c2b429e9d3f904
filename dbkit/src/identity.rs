//! Store identity: which store a database is, and which peer store it was
//! paired with.
//!
//! Every store (the order store and the account store, on SQLite or
//! PostgreSQL) carries a random identity written once, when the store is
//! initialised ([`OpenMode::Init`]), in a one-row `store_meta` table (one row
//! per component on PostgreSQL, where several components may share a
//! database). A store is opened only if it holds that identity and is of the
//! expected kind, so an emptied, deleted or never-initialised database is
//! refused at start instead of silently starting over (which would answer
//! every old order NOT_FOUND and place a second order for a re-sent
//! request_id while the account store still holds the old reservations).
//!
//! The order store also records the identity of the account store it was
//! first used with ([`check_peer`]): the order service asks the account
//! service for its store identity at start and refuses a different one. One
//! side suffices for the pair: swapping either file changes the pair the
//! order store sees. The order store is the side that checks because it is
//! the one whose records (request ids, reservation ids) refer into the other
//! store, and because one account service may serve many order services
//! while each order store belongs to exactly one account store.

use crate::StoreError;

/// How a store is opened at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The store must exist and hold its identity (a restart).
    Existing,
    /// Create and initialise the store if there is none yet (`--init`); an
    /// existing store is opened and checked as with [`OpenMode::Existing`]
    /// (never overwritten).
    Init,
}

/// The identity recorded in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreIdentity {
    /// Random id written when the store was initialised.
    pub store_id: String,
    /// The store's kind (`order-store`, `account-store`).
    pub kind: String,
    /// The identity of the peer store this one was paired with, if any.
    pub peer_id: Option<String>,
}

impl StoreIdentity {
    /// A new random identity of `kind` without a peer.
    pub fn generate(kind: &str) -> Self {
        Self {
            store_id: uuid::Uuid::new_v4().to_string(),
            kind: kind.to_owned(),
            peer_id: None,
        }
    }
}

/// Compares the peer recorded in `identity` of the store named `store` with
/// `actual`, the identity of the peer store reached now.
///
/// Returns `Ok(true)` when no peer is recorded yet (the caller records
/// `actual`), `Ok(false)` when it matches, and
/// [`StoreError::PeerMismatch`] when it differs.
pub fn check_peer(
    store: &str,
    identity: &StoreIdentity,
    peer_kind: &str,
    peer_location: &str,
    actual: &str,
) -> Result<bool, StoreError> {
    match &identity.peer_id {
        None => Ok(true),
        Some(recorded) if recorded == actual => Ok(false),
        Some(recorded) => Err(StoreError::PeerMismatch(Box::new(
            crate::error::PeerMismatch {
                store: store.to_owned(),
                peer_kind: peer_kind.to_owned(),
                peer_location: peer_location.to_owned(),
                recorded: recorded.clone(),
                actual: actual.to_owned(),
            },
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_is_recorded_once_and_then_checked() {
        let mut id = StoreIdentity::generate("order-store");
        assert!(check_peer("o.db", &id, "account store", "http://a", "A").unwrap());
        id.peer_id = Some("A".into());
        assert!(!check_peer("o.db", &id, "account store", "http://a", "A").unwrap());
        let err = check_peer("o.db", &id, "account store", "http://a", "B").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("o.db") && text.contains("A") && text.contains("B"),
            "{text}"
        );
    }
}
