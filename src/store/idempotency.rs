//! The values of the HTTP API's idempotency keys (`grant_idempotency`): a key is claimed by the
//! first request that carries it, then bound to the grant that request made.

use crate::domain::GrantId;

/// An idempotency key as one requester sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Who sent it (the API token's name).
    pub requester: String,
    /// The `Idempotency-Key` header.
    pub key: String,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key was new and is now this request's.
    Claimed,
    /// An earlier request holds the key.
    Seen {
        /// The fingerprint of the earlier request's body.
        fingerprint: String,
        /// The grant it made, once made.
        grant: Option<GrantId>,
    },
}
