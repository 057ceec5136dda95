//! Idempotency keys: a repeat of a request returns the first answer.
//!
//! The answer of a request that changed something is stored by the store
//! in the same transaction as the change, so it survives a crash exactly
//! when the change does. While the first request runs, its key is held
//! here, and a repeat gets 409 `REQUEST_IN_PROGRESS`. A request that was
//! refused changed nothing and stores no answer: a repeat runs again.

use super::{Error, Result, Storefront};
use crate::model::IdempotentAnswer;
use crate::ports::IdempotencyWrite;
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

/// Keys whose first request is running, per instance.
#[derive(Default, Clone)]
pub struct InFlight(Arc<Mutex<HashSet<(UserId, String)>>>);

impl InFlight {
    /// Whether a request with `key` of `user` is running now.
    pub fn is_running(&self, user: UserId, key: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(user, key.to_owned()))
    }
}

/// Holds a key in flight until dropped.
pub struct FlightGuard {
    set: InFlight,
    entry: (UserId, String),
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.entry);
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
    pub async fn begin_idempotent(&self, user: UserId, key: &IdempotencyKey) -> Result<Begun> {
        let entry = (user, key.key.clone());
        if !self
            .in_flight
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.clone())
        {
            return Err(Error::RequestInProgress);
        }
        let guard = FlightGuard {
            set: self.in_flight.clone(),
            entry,
        };
        match self.ledger.idempotent_answer(user, &key.key).await? {
            None => Ok(Begun::Fresh(guard)),
            Some(a) if a.request_hash == key.request_hash => Ok(Begun::Replay(a)),
            Some(_) => Err(Error::IdempotencyKeyReused),
        }
    }
}
