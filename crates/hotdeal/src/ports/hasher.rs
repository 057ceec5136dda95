//! Password hashing as a port: the Argon2id adapter runs off the async
//! runtime with bounded concurrency, and says so when it is saturated.

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot and the short wait queue are taken; the caller
    /// should answer 503 at once rather than queue without bound.
    #[error("password hashing is saturated")]
    Saturated,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

#[async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// A PHC string for `password`.
    async fn hash(&self, password: String) -> Result<String, HashError>;

    /// Whether `password` matches `phc`. With `phc = None` (unknown user) the
    /// adapter still spends the time of one verification, so the answer's
    /// timing does not reveal whether an email is registered.
    async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError>;

    /// Slots, queue and refusals, for `/metrics` (adapters without a
    /// queue have none to show).
    fn stats(&self) -> Option<HasherStats> {
        None
    }
}

/// A hasher's load at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HasherStats {
    /// Hashes running now.
    pub running: usize,
    /// Hashes waiting for a slot.
    pub waiting: usize,
    /// Slots (hashes that may run at once).
    pub workers: usize,
    /// Hashes that may wait before new ones are refused.
    pub queue: usize,
    /// Hashes refused since start because slots and queue were full.
    pub shed: u64,
}
