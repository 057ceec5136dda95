//! Idempotency keys whose first request is still running.
//!
//! A repeat of a keyed request while the first one runs gets 409
//! `REQUEST_IN_PROGRESS`, on whichever instance it lands: the mark is held
//! where every instance sees it (in process for one instance, in Redis for
//! several), with an expiry so that an instance dying mid-request does not
//! block the key for ever. The stored answer, not the mark, decides replays.

use async_trait::async_trait;
use hotdeal_domain::UserId;

/// The marks could not be read: the caller answers 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarksUnavailable;

#[async_trait]
pub trait RunningKeys: Send + Sync + 'static {
    /// Marks `key` of `user` running; false if it is already.
    async fn start(&self, user: UserId, key: &str) -> Result<bool, MarksUnavailable>;

    /// Whether `key` of `user` is marked running now.
    async fn is_running(&self, user: UserId, key: &str) -> bool;

    /// Clears the mark (the request was answered). Returns at once.
    fn finish(&self, user: UserId, key: &str);
}
