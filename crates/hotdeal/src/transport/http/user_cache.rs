//! `GET /auth/users/me`, answered from memory.
//!
//! A signed-in client asks for its own user again and again; the bearer
//! check is one HMAC, and without a cache each answer also took a read on
//! the store's connection thread and a fresh serialisation. Users are never
//! changed or deleted (no route edits one), so a rendered answer stays
//! right for as long as it is kept: the cache needs no invalidation, only a
//! bound. A route that ever changes a user must [`UserCache::forget`] it.
//! A token naming a user the store does not have is never cached: it keeps
//! being checked against the store (401 `INVALID_TOKEN`).

use axum::body::Bytes;
use hotdeal_domain::UserId;
use std::collections::HashMap;
use std::sync::RwLock;

/// Users kept at most; when full the cache starts over (cheap and rare).
const MAX_USERS: usize = 100_000;

#[derive(Default)]
pub struct UserCache {
    /// Read on every hit, written once per user: readers share the lock.
    users: RwLock<HashMap<UserId, Bytes>>,
}

impl UserCache {
    pub fn get(&self, user: UserId) -> Option<Bytes> {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user)
            .cloned()
    }

    pub fn put(&self, user: UserId, body: Bytes) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if users.len() >= MAX_USERS {
            users.clear();
        }
        users.insert(user, body);
    }

    #[allow(dead_code)] // the contract for a future route that edits users
    pub fn forget(&self, user: UserId) {
        self.users
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_it_was_given_within_its_bound() {
        let cache = UserCache::default();
        let u = UserId::new();
        assert!(cache.get(u).is_none());
        cache.put(u, Bytes::from_static(b"{}"));
        assert_eq!(cache.get(u).as_deref(), Some(&b"{}"[..]));
        cache.forget(u);
        assert!(cache.get(u).is_none());
        for _ in 0..MAX_USERS + 1 {
            cache.put(UserId::new(), Bytes::new());
        }
        assert!(cache.users.read().expect("lock").len() <= MAX_USERS);
    }
}
