//! Idempotency keys: a repeat of a request returns the first answer.
//!
//! The answer of a request that changed something is stored by the store
//! in the same transaction as the change, so it survives a crash exactly
//! when the change does. While the first request runs, its key is held
//! by a [`RunningKeys`] mark, and a repeat gets 409 `REQUEST_IN_PROGRESS`. A request that was
//! refused changed nothing and stores no answer: a repeat runs again.
//!
//! Orders on a store that refuses answered keys itself
//! ([`crate::ports::OrderStore::refuses_answered_keys`]) skip the read of the
//! stored answer before they run: the store writes the answer in the
//! order's transaction only if the key has none, so a repeat of an
//! answered request is refused there and changes nothing. A keyed order
//! that fails for any reason reads the stored answer before answering
//! ([`Idempotency::answer_after_failure`]): a repeat of an order placed
//! before the deal sold out still gets its first answer. Keys this process
//! stored recently ([`AnsweredKeys`]) are read first, as before: a
//! client's retry is the usual reason for a repeat, and reading the answer
//! is cheaper than a refused write.
//!
//! [`Idempotency`] is shared, not a context of its own: the order service
//! holds it (orders and payments), and so does the transport of point
//! charges; the housekeeping prunes old answers through it in every role.

use super::{Error, Result};
use crate::model::IdempotentAnswer;
use crate::ports::{Clock, IdempotencyAnswers, IdempotencyWrite, MarksUnavailable, RunningKeys};
use async_trait::async_trait;
use chrono::Duration;
use hotdeal_domain::UserId;
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

/// A request's key and the hash of what it asked.
#[derive(Clone, Debug)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: [u8; 32],
}

impl IdempotencyKey {
    /// This key, to be stored with a change answered `status` and rendered
    /// by `render` from the changed resource.
    pub fn write<'a, T>(
        &'a self,
        user: UserId,
        status: u16,
        render: &'a fn(&T) -> Vec<u8>,
    ) -> IdempotencyWrite<'a, T> {
        IdempotencyWrite {
            user_id: user,
            key: &self.key,
            request_hash: self.request_hash,
            status,
            render,
        }
    }
}

/// Keys whose first request is running in this process: the marks of a
/// single instance.
#[derive(Default, Clone)]
pub struct InFlight(Arc<Mutex<HashSet<(UserId, String)>>>);

#[async_trait]
impl RunningKeys for InFlight {
    async fn start(&self, user: UserId, key: &str) -> std::result::Result<bool, MarksUnavailable> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((user, key.to_owned())))
    }

    async fn is_running(&self, user: UserId, key: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(user, key.to_owned()))
    }

    fn finish(&self, user: UserId, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(user, key.to_owned()));
    }
}

/// Keys whose answers this process stored lately, as 64-bit fingerprints
/// of (user, key), the oldest forgotten first past a bound. A hint only: a
/// key found here may have been pruned from the store (or be another key
/// with the same fingerprint), and a key not found here may be in the
/// store (answered before a restart, or forgotten here); the store decides.
pub struct AnsweredKeys {
    hasher: RandomState,
    inner: Mutex<Fingerprints>,
    capacity: usize,
}

#[derive(Default)]
struct Fingerprints {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl AnsweredKeys {
    /// At most `capacity` keys (16 bytes or so each).
    pub fn new(capacity: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            inner: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    fn fingerprint(&self, user: UserId, key: &str) -> u64 {
        self.hasher.hash_one((user.0.as_u128(), key))
    }

    pub fn insert(&self, user: UserId, key: &str) {
        let f = self.fingerprint(user, key);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.set.insert(f) {
            return;
        }
        inner.order.push_back(f);
        if inner.order.len() > self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.set.remove(&old);
            }
        }
    }

    pub fn may_contain(&self, user: UserId, key: &str) -> bool {
        let f = self.fingerprint(user, key);
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set
            .contains(&f)
    }
}

/// Holds a key's mark until dropped.
pub struct FlightGuard {
    marks: Arc<dyn RunningKeys>,
    user: UserId,
    key: String,
    /// Whether the store was asked for an answer to the key before the
    /// request ran.
    looked_up: bool,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.marks.finish(self.user, &self.key);
    }
}

/// How a keyed request proceeds.
pub enum Begun {
    /// First time: run it (holding the guard until answered).
    Fresh(FlightGuard),
    /// Seen before with the same request: send this answer again.
    Replay(IdempotentAnswer),
}

/// Keys of answered orders kept in memory to tell a likely retry (about
/// 2 MB).
const ANSWERED_KEYS: usize = 65_536;

/// Idempotency keys: which are running, and the answers stored for them.
pub struct Idempotency {
    /// Idempotency keys whose first request is still running.
    running: Arc<dyn RunningKeys>,
    answers: Arc<dyn IdempotencyAnswers>,
    /// The store refuses an order whose idempotency key has an answer
    /// already, so a keyed order need not look its key up first.
    keys_refused_on_write: bool,
    /// Keys of orders this process answered lately.
    answered: AnsweredKeys,
    clock: Arc<dyn Clock>,
}

impl Idempotency {
    pub fn new(
        running: Arc<dyn RunningKeys>,
        answers: Arc<dyn IdempotencyAnswers>,
        keys_refused_on_write: bool,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            running,
            answers,
            keys_refused_on_write,
            answered: AnsweredKeys::new(ANSWERED_KEYS),
            clock,
        }
    }

    /// Forgets answers older than two days (the contract keeps them at
    /// least 24 hours).
    pub async fn prune(&self) -> Result<()> {
        let now = self.clock.now();
        self.answers
            .prune_idempotency(now - Duration::days(2))
            .await?;
        Ok(())
    }

    /// Whether a request with `key` of `user` is running now.
    pub async fn is_running(&self, user: UserId, key: &str) -> bool {
        self.running.is_running(user, key).await
    }

    /// Begins a keyed request: marks its key running, then replays the
    /// stored answer if there is one.
    pub async fn begin_idempotent(&self, user: UserId, key: &IdempotencyKey) -> Result<Begun> {
        self.begin_keyed(user, key, true).await
    }

    /// As [`Idempotency::begin_idempotent`], for an order. On a store that
    /// refuses answered keys in the order's own transaction the stored
    /// answer is looked up first only for a key this process answered
    /// lately (a likely retry); any other key runs at once, and a failure
    /// goes through [`Idempotency::answer_after_failure`].
    pub async fn begin_idempotent_order(
        &self,
        user: UserId,
        key: &IdempotencyKey,
    ) -> Result<Begun> {
        let look_up = !self.keys_refused_on_write || self.answered.may_contain(user, &key.key);
        self.begin_keyed(user, key, look_up).await
    }

    async fn begin_keyed(
        &self,
        user: UserId,
        key: &IdempotencyKey,
        look_up: bool,
    ) -> Result<Begun> {
        match self.running.start(user, &key.key).await {
            Ok(true) => {}
            // The first request may have answered a moment ago, its mark
            // not yet cleared (a shared mark is cleared in the background):
            // its stored answer, if any, decides.
            Ok(false) => {
                return match self.answers.idempotent_answer(user, &key.key).await? {
                    Some(a) if a.request_hash == key.request_hash => Ok(Begun::Replay(a)),
                    Some(_) => Err(Error::IdempotencyKeyReused),
                    None => Err(Error::RequestInProgress),
                };
            }
            Err(MarksUnavailable) => return Err(Error::Overloaded),
        }
        let guard = FlightGuard {
            marks: self.running.clone(),
            user,
            key: key.key.clone(),
            looked_up: look_up,
        };
        if !look_up {
            return Ok(Begun::Fresh(guard));
        }
        match self.answers.idempotent_answer(user, &key.key).await? {
            None => Ok(Begun::Fresh(guard)),
            Some(a) if a.request_hash == key.request_hash => Ok(Begun::Replay(a)),
            Some(_) => Err(Error::IdempotencyKeyReused),
        }
    }

    /// A keyed request begun with `guard` failed with `error`. If its key
    /// was not looked up before it ran, or the store refused it as answered
    /// already, the stored answer decides: the same request gets that
    /// answer again (`Ok`), another request 422. Otherwise, or with no
    /// answer stored, `error` stands.
    pub async fn answer_after_failure(
        &self,
        key: &IdempotencyKey,
        guard: &FlightGuard,
        error: Error,
    ) -> Result<IdempotentAnswer> {
        let refused = matches!(error, Error::KeyAnswered);
        if guard.looked_up && !refused {
            return Err(error);
        }
        match self.answers.idempotent_answer(guard.user, &key.key).await? {
            Some(a) if a.request_hash == key.request_hash => Ok(a),
            Some(_) => Err(Error::IdempotencyKeyReused),
            // Refused as answered, yet no answer now: it was pruned in
            // between. Nothing was written; a retry runs afresh.
            None if refused => Err(Error::Overloaded),
            None => Err(error),
        }
    }

    /// Notes that `key` of `user` has an answer stored now.
    pub(super) fn note_answered(&self, user: UserId, key: &str) {
        if self.keys_refused_on_write {
            self.answered.insert(user, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_keys_forget_the_oldest_past_their_bound() {
        let keys = AnsweredKeys::new(2);
        let (a, b) = (UserId(uuid::Uuid::now_v7()), UserId(uuid::Uuid::now_v7()));
        keys.insert(a, "k1");
        keys.insert(a, "k1");
        keys.insert(b, "k1");
        assert!(keys.may_contain(a, "k1") && keys.may_contain(b, "k1"));
        assert!(!keys.may_contain(a, "k2"), "keys are per user");
        keys.insert(a, "k2");
        assert!(!keys.may_contain(a, "k1"), "the oldest is forgotten");
        assert!(keys.may_contain(b, "k1") && keys.may_contain(a, "k2"));
    }
}
