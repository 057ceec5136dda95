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
}
