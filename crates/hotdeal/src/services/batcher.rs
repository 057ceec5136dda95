//! Group commit: one task writes admitted changes to the store in batches.
//!
//! Requests hand their admitted change to a bounded queue and wait. The
//! task takes whatever is queued (up to `max_batch`), commits it in one go,
//! and only then answers each waiting request. While a batch is being
//! written the next one gathers in the queue, so batches grow with the load
//! and an idle server commits a lone change at once, with no timer to wait
//! for.
//!
//! The task, not the request, settles what each change holds in the
//! admission tier once the store has decided (one call per batch): a
//! client that hangs up mid-commit must not strand units.

use crate::observability::metrics::WriterStats;
use crate::ports::{StoreResult, Verdict};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// Writes a batch; returns one outcome per write, in order, and the writes.
pub type CommitFn<W, O> = Box<
    dyn Fn(Vec<W>) -> Pin<Box<dyn Future<Output = (Vec<W>, Vec<StoreResult<O>>)> + Send>>
        + Send
        + Sync,
>;

/// The answer for one write: the store's verdict and the write itself.
pub type Committed<W, O> = (StoreResult<O>, W);

/// Settles a batch's holds with the store's verdicts.
pub type SettleFn<H> =
    Box<dyn Fn(Vec<(H, Verdict)>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct Job<W, O, H> {
    write: W,
    /// What the write holds in the admission tier.
    hold: H,
    reply: oneshot::Sender<Committed<W, O>>,
}

/// The queue is full: the caller should answer 503 and give the hold back.
#[derive(Debug)]
pub struct QueueFull<H>(pub H);

pub struct Batcher<W, O, H> {
    queue: mpsc::Sender<Job<W, O, H>>,
    /// Batch sizes and commit latencies, for `/metrics`.
    stats: Arc<WriterStats>,
}

impl<W: Send + 'static, O: Send + 'static, H: Send + 'static> Batcher<W, O, H> {
    /// Starts the writing task. `verdict` tells what each outcome means
    /// for the write's hold; `settle` applies a batch's verdicts.
    pub fn start(
        commit: CommitFn<W, O>,
        verdict: fn(&StoreResult<O>) -> Verdict,
        settle: SettleFn<H>,
        queue: usize,
        max_batch: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let stats = Arc::new(WriterStats::default());
        let stage = Stage {
            commit,
            verdict,
            settle,
        };
        tokio::spawn(run(stage, rx, max_batch.max(1), stats.clone()));
        Self { queue: tx, stats }
    }

    /// Changes waiting for the writer now.
    pub fn depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Most changes that may wait.
    pub fn capacity(&self) -> usize {
        self.queue.max_capacity()
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Queues an admitted write with its hold. On a full queue the hold
    /// comes back with the refusal.
    pub fn submit(
        &self,
        write: W,
        hold: H,
    ) -> Result<oneshot::Receiver<Committed<W, O>>, QueueFull<H>> {
        let (reply, rx) = oneshot::channel();
        let job = Job { write, hold, reply };
        match self.queue.try_send(job) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                Err(QueueFull(job.hold))
            }
        }
    }
}

/// What the writing task does with a batch.
struct Stage<W, O, H> {
    commit: CommitFn<W, O>,
    verdict: fn(&StoreResult<O>) -> Verdict,
    settle: SettleFn<H>,
}

async fn run<W, O, H>(
    stage: Stage<W, O, H>,
    mut rx: mpsc::Receiver<Job<W, O, H>>,
    max_batch: usize,
    stats: Arc<WriterStats>,
) {
    let Stage {
        commit,
        verdict,
        settle,
    } = stage;
    let mut jobs: Vec<Job<W, O, H>> = Vec::with_capacity(max_batch);
    loop {
        if rx.recv_many(&mut jobs, max_batch).await == 0 {
            return; // every sender is gone: the server stopped
        }
        let mut writes = Vec::with_capacity(jobs.len());
        let mut holds = Vec::with_capacity(jobs.len());
        let mut waiting = Vec::with_capacity(jobs.len());
        for j in jobs.drain(..) {
            writes.push(j.write);
            holds.push(j.hold);
            waiting.push(j.reply);
        }
        let size = writes.len();
        stats.batch_sizes.record(size as u64);
        let started = Instant::now();
        let span = tracing::debug_span!("commit_batch", size);
        let (writes, outcomes) = commit(writes).instrument(span).await;
        stats.commit_seconds.record_duration(started.elapsed());
        let mut outcomes = outcomes.into_iter();
        let mut verdicts = Vec::with_capacity(holds.len());
        let mut answers = Vec::with_capacity(holds.len());
        for ((write, hold), reply) in writes.into_iter().zip(holds).zip(waiting) {
            let outcome = outcomes.next().unwrap_or_else(|| {
                Err(crate::ports::StoreError::Backend(
                    "no outcome for a write".into(),
                ))
            });
            verdicts.push((hold, verdict(&outcome)));
            answers.push((reply, outcome, write));
        }
        // Settled before answering, so a refused write's units are back
        // by the time its client hears of it.
        settle(verdicts).await;
        for (reply, outcome, write) in answers {
            // The requester may have hung up; the change stands either way.
            let _ = reply.send((outcome, write));
        }
    }
}
