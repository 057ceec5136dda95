//! Argon2id password hashing, off the async runtime, with bounded
//! concurrency.
//!
//! One hash costs tens of milliseconds of CPU and ~19 MiB of memory by
//! design. Running hashes on the async workers would stall every other
//! request, and queueing them without bound is how seed 004's sign-up flow
//! reached 23-second latencies. So at most `workers` hashes run at once on
//! the blocking pool, at most `queue` more wait for a slot, and anything past
//! that is refused at once with [`HashError::Saturated`].
//!
//! Each hash needs `memory_kib` of working memory. Allocating it per hash
//! lets the allocator keep ~19 MiB per blocking thread that ever hashed (a
//! server that signed up a few hundred users sat at 650 MB), so the
//! buffers are allocated once per worker slot and reused: memory for
//! hashing is `workers × memory_kib`, whatever the traffic.

use crate::ports::hasher::{HashError, HasherStats, PasswordHasher};
use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use rand::RngCore;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Bytes of the stored hash.
const OUTPUT_LEN: usize = 32;

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
    params: Params,
    /// Slots for hashes running on the blocking pool.
    slots: Arc<Semaphore>,
    /// Working memory of finished hashes, reused by the next ones.
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Hashes running or waiting; bounded by `slots + queue`.
    in_system: AtomicUsize,
    limit: usize,
    workers: usize,
    /// Hashes refused for a full queue, for `/metrics`.
    shed: AtomicU64,
    /// A real hash of a random password, verified against when the user is
    /// unknown so both answers take the same time.
    dummy: String,
}

impl Argon2Hasher {
    pub fn new(params: Argon2Params, workers: usize, queue: usize) -> Result<Self, HashError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(failed)?;
        let buffers = Arc::new(Mutex::new(Vec::new()));
        let dummy = hash_with(
            &params,
            b"unknown-user",
            &mut take_buffer(&buffers, &params),
        )?;
        let workers = workers.max(1);
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(workers)),
            buffers,
            in_system: AtomicUsize::new(0),
            limit: workers + queue,
            workers,
            shed: AtomicU64::new(0),
            dummy,
        })
    }

    /// Runs `job` on the blocking pool with a working buffer once a slot is
    /// free, or refuses at once when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        if self.in_system.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.in_system.fetch_sub(1, Ordering::AcqRel);
            self.shed.fetch_add(1, Ordering::Relaxed);
            return Err(HashError::Saturated);
        }
        let _leave = Leave(&self.in_system);
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| HashError::Failed("hasher closed".into()))?;
        let buffers = self.buffers.clone();
        let mut buffer = take_buffer(&buffers, &self.params);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let out = span.in_scope(|| job(&mut buffer));
            buffers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(buffer);
            out
        })
        .await
        .map_err(failed)
    }
}

fn failed(e: impl std::fmt::Display) -> HashError {
    HashError::Failed(e.to_string())
}

/// A pooled buffer (at least as large as `params` needs), or a new one.
fn take_buffer(pool: &Mutex<Vec<Vec<Block>>>, params: &Params) -> Vec<Block> {
    let mut buffer = pool
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_default();
    if buffer.len() < params.block_count() {
        buffer.resize(params.block_count(), Block::default());
    }
    buffer
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// The PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) of `password`
/// under a fresh random salt.
fn hash_with(params: &Params, password: &[u8], buffer: &mut [Block]) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; OUTPUT_LEN];
    argon(params)
        .hash_password_into_with_memory(password, &salt, &mut out, buffer)
        .map_err(failed)?;
    let salt = SaltString::encode_b64(&salt).map_err(failed)?;
    let out = Output::new(&out).map_err(failed)?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        out
    ))
}

/// Whether `password` matches the PHC string `phc`, computed with the
/// parameters stored in it (so users hashed under older parameters still
/// log in). The comparison is constant-time.
fn verify_with(phc: &str, password: &[u8], buffer: &mut Vec<Block>) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(phc).map_err(failed)?;
    let params = Params::try_from(&parsed).map_err(failed)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(HashError::Failed("stored hash lacks salt or output".into()));
    };
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(failed)?;
    if buffer.len() < params.block_count() {
        buffer.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let params = Params::new(
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        Some(out.len()),
    )
    .map_err(failed)?;
    argon(&params)
        .hash_password_into_with_memory(
            password,
            salt,
            &mut out,
            &mut buffer[..params.block_count()],
        )
        .map_err(failed)?;
    Ok(Output::new(&out).map_err(failed)? == expected)
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
        let params = self.params.clone();
        self.run(move |buffer| hash_with(&params, password.as_bytes(), buffer))
            .await?
    }

    async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.clone());
        let matched = self
            .run(move |buffer| verify_with(&phc, password.as_bytes(), buffer))
            .await??;
        Ok(matched && known)
    }

    fn stats(&self) -> Option<HasherStats> {
        let running = self.workers - self.slots.available_permits().min(self.workers);
        let in_system = self.in_system.load(Ordering::Relaxed);
        Some(HasherStats {
            running,
            waiting: in_system.saturating_sub(running),
            workers: self.workers,
            queue: self.limit - self.workers,
            shed: self.shed.load(Ordering::Relaxed),
        })
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

    #[test]
    fn hashes_are_standard_phc_strings() {
        // A hash made here verifies with the reference implementation's
        // verifier, and one made by it verifies here.
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let params = Params::new(64, 1, 1, Some(OUTPUT_LEN)).expect("params");
        let mut buffer = vec![Block::default(); params.block_count()];
        let ours = hash_with(&params, b"s3cret-pass", &mut buffer).expect("hash");
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(argon(&params)
            .verify_password(b"s3cret-pass", &parsed)
            .is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon(&params)
            .hash_password(b"s3cret-pass", &salt)
            .expect("hash")
            .to_string();
        assert!(verify_with(&theirs, b"s3cret-pass", &mut buffer).expect("verify"));
        assert!(!verify_with(&theirs, b"wrong", &mut buffer).expect("verify"));
    }

    #[tokio::test]
    async fn buffers_are_reused_not_reallocated() {
        let h = Argon2Hasher::new(cheap(), 2, 2).expect("hasher");
        for _ in 0..10 {
            h.hash("password1".into()).await.expect("hash");
        }
        assert!(
            h.buffers.lock().expect("lock").len() <= 2,
            "at most one buffer per slot"
        );
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
