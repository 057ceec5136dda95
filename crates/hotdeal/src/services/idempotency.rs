//! Idempotency keys: a repeat of a request returns the first answer.
//!
//! The answer of a request that changed something is stored by the store
//! in the same transaction as the change, so it survives a crash exactly
//! when the change does. While the first request runs, its key is held
//! by a [`RunningKeys`] mark, and a repeat gets 409 `REQUEST_IN_PROGRESS`. A request that was
//! refused changed nothing and stores no answer: a repeat runs again.

use super::{Error, Result, Storefront};
use crate::model::IdempotentAnswer;
use crate::ports::{IdempotencyWrite, MarksUnavailable, RunningKeys};
use async_trait::async_trait;
use hotdeal_domain::UserId;
use std::collections::HashSet;
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

/// Holds a key's mark until dropped.
pub struct FlightGuard {
    marks: Arc<dyn RunningKeys>,
    user: UserId,
    key: String,
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

impl Storefront {
    /// Whether a request with `key` of `user` is running now.
    pub async fn is_running(&self, user: UserId, key: &str) -> bool {
        self.running.is_running(user, key).await
    }

    pub async fn begin_idempotent(&self, user: UserId, key: &IdempotencyKey) -> Result<Begun> {
        match self.running.start(user, &key.key).await {
            Ok(true) => {}
            // The first request may have answered a moment ago, its mark
            // not yet cleared (a shared mark is cleared in the background):
            // its stored answer, if any, decides.
            Ok(false) => {
                return match self.ledger.idempotent_answer(user, &key.key).await? {
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
        };
        match self.ledger.idempotent_answer(user, &key.key).await? {
            None => Ok(Begun::Fresh(guard)),
            Some(a) if a.request_hash == key.request_hash => Ok(Begun::Replay(a)),
            Some(_) => Err(Error::IdempotencyKeyReused),
        }
    }
}
