//! Argon2id password hashing, off the async runtime, with bounded
//! concurrency.
//!
//! One hash costs tens of milliseconds of CPU and ~19 MiB of memory by
//! design. Running hashes on the async workers would stall every other
//! request, and queueing them without bound is how seed 004's sign-up flow
//! reached 23-second latencies. So at most `workers` hashes run at once on
//! the blocking pool, at most `queue` more wait for a slot, and anything past
//! that is refused at once with [`HashError::Saturated`].

use crate::ports::hasher::{HashError, PasswordHasher};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use async_trait::async_trait;
use serde::Deserialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's first recommended Argon2id configuration: m=19 MiB, t=2, p=1.
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

pub struct Argon2Hasher {
    argon: Argon2<'static>,
    /// Slots for hashes running on the blocking pool.
    slots: Arc<Semaphore>,
    /// Hashes running or waiting; bounded by `slots + queue`.
    in_system: AtomicUsize,
    limit: usize,
    /// A real hash of a random password, verified against when the user is
    /// unknown so both answers take the same time.
    dummy: String,
}

impl Argon2Hasher {
    pub fn new(params: Argon2Params, workers: usize, queue: usize) -> Result<Self, HashError> {
        let p = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| HashError::Failed(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
        let salt = SaltString::generate(&mut OsRng);
        let dummy = argon2::PasswordHasher::hash_password(&argon, b"unknown-user", &salt)
            .map_err(|e| HashError::Failed(e.to_string()))?
            .to_string();
        let workers = workers.max(1);
        Ok(Self {
            argon,
            slots: Arc::new(Semaphore::new(workers)),
            in_system: AtomicUsize::new(0),
            limit: workers + queue,
            dummy,
        })
    }

    /// Runs `job` on the blocking pool once a slot is free, or refuses at
    /// once when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        if self.in_system.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.in_system.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Saturated);
        }
        let _leave = Leave(&self.in_system);
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| HashError::Failed("hasher closed".into()))?;
        let argon = self.argon.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| job(&argon)))
            .await
            .map_err(|e| HashError::Failed(e.to_string()))
    }
}

/// Decrements the in-system count however the caller leaves (including a
/// dropped request future).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |argon| {
            let salt = SaltString::generate(&mut OsRng);
            argon2::PasswordHasher::hash_password(argon, password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.clone());
        self.run(move |argon| {
            let parsed = PasswordHash::new(&phc).map_err(|e| HashError::Failed(e.to_string()))?;
            // Verification uses the parameters stored in the hash, so users
            // hashed under older parameters still log in.
            Ok(argon.verify_password(password.as_bytes(), &parsed).is_ok() && known)
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Params {
        Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let h = Argon2Hasher::new(cheap(), 2, 2).expect("hasher");
        let phc = h.hash("correct horse".into()).await.expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(h
            .verify("correct horse".into(), Some(phc.clone()))
            .await
            .expect("verify"));
        assert!(!h.verify("wrong".into(), Some(phc)).await.expect("verify"));
        assert!(!h.verify("unknown-user".into(), None).await.expect("verify"));
    }

    #[test]
    fn default_parameters_are_owasp() {
        let p = Argon2Params::default();
        assert_eq!((p.memory_kib, p.iterations, p.parallelism), (19456, 2, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saturation_is_refused_not_queued() {
        // One slot, no queue, and a costly hash: of many simultaneous calls
        // some must be refused straight away.
        let params = Argon2Params {
            memory_kib: 8 * 1024,
            iterations: 3,
            parallelism: 1,
        };
        let h = Arc::new(Argon2Hasher::new(params, 1, 0).expect("hasher"));
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.hash("password1".into()).await })
            })
            .collect();
        let mut saturated = 0;
        let mut ok = 0;
        for c in calls {
            match c.await.expect("join") {
                Ok(_) => ok += 1,
                Err(HashError::Saturated) => saturated += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(ok >= 1, "at least one hash ran");
        assert!(saturated >= 1, "some calls were refused");
        assert_eq!(h.in_system.load(Ordering::Acquire), 0);
    }
}
