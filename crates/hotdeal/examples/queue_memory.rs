//! How much memory a waiting room takes per waiting user: joins
//! `N` users (default 1,000,000) to one deal's in-memory queue and prints
//! the queue's own accounting and the process's resident-set growth.
//!
//! `cargo run --release -p hotdeal --example queue_memory [N]`

use chrono::{Duration, Utc};
use hotdeal::adapters::memory_queue::MemoryQueue;
use hotdeal::ports::{QueueDeal, QueueStore};
use hotdeal_domain::{DealId, UserId};

/// Resident set size in bytes (Linux), 0 elsewhere.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let now = Utc::now();
    let deal = QueueDeal {
        id: DealId::new(),
        opens_at: now,
        admit_per_sec: 1,
        admitted_for: Duration::minutes(5),
        poll_min: Duration::milliseconds(500),
        poll_max: Duration::seconds(5),
    };
    let q = MemoryQueue::new(n + 1);
    let before = rss();
    let started = std::time::Instant::now();
    for _ in 0..n {
        q.join(&deal, UserId::new(), now).await?;
    }
    let took = started.elapsed();
    let after = rss();
    println!(
        "{n} waiting users: queue accounting {:.1} bytes/user, RSS growth {:.1} bytes/user ({:.1} MiB), {:.0} joins/s on one thread",
        q.footprint() as f64 / n as f64,
        after.saturating_sub(before) as f64 / n as f64,
        after.saturating_sub(before) as f64 / 1048576.0,
        n as f64 / took.as_secs_f64()
    );
    Ok(())
}
