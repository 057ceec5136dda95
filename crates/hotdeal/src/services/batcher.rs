//! Group commit: one task writes admitted changes to the store in batches.
//!
//! Requests hand their admitted change to a bounded queue and wait. The
//! task takes whatever is queued (up to `max_batch`), commits it in one go,
//! and only then answers each waiting request. While a batch is being
//! written the next one gathers in the queue, so batches grow with the load
//! and an idle server commits a lone change at once, with no timer to wait
//! for.
//!
//! The task, not the request, undoes an admission when a change does not
//! go through: a client that hangs up mid-commit must not strand units.

use crate::observability::metrics::WriterStats;
use crate::ports::StoreResult;
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

struct Job<W, O> {
    write: W,
    /// Undoes the admission; run unless the outcome is a success.
    undo: Box<dyn FnOnce() + Send>,
    reply: oneshot::Sender<Committed<W, O>>,
}

/// The queue is full: the caller should answer 503.
#[derive(Debug)]
pub struct QueueFull;

pub struct Batcher<W, O> {
    queue: mpsc::Sender<Job<W, O>>,
    /// Batch sizes and commit latencies, for `/metrics`.
    stats: Arc<WriterStats>,
}

impl<W: Send + 'static, O: Send + 'static> Batcher<W, O> {
    /// Starts the writing task. `succeeded` tells which outcomes keep their
    /// admission.
    pub fn start(
        commit: CommitFn<W, O>,
        succeeded: fn(&StoreResult<O>) -> bool,
        queue: usize,
        max_batch: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let stats = Arc::new(WriterStats::default());
        tokio::spawn(run(commit, succeeded, rx, max_batch.max(1), stats.clone()));
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

    /// Queues an admitted write. On a full queue `undo` runs here and the
    /// caller refuses the request.
    pub fn submit(
        &self,
        write: W,
        undo: impl FnOnce() + Send + 'static,
    ) -> Result<oneshot::Receiver<Committed<W, O>>, QueueFull> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            write,
            undo: Box::new(undo),
            reply,
        };
        match self.queue.try_send(job) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                (job.undo)();
                Err(QueueFull)
            }
        }
    }
}

async fn run<W, O>(
    commit: CommitFn<W, O>,
    succeeded: fn(&StoreResult<O>) -> bool,
    mut rx: mpsc::Receiver<Job<W, O>>,
    max_batch: usize,
    stats: Arc<WriterStats>,
) {
    let mut jobs: Vec<Job<W, O>> = Vec::with_capacity(max_batch);
    loop {
        if rx.recv_many(&mut jobs, max_batch).await == 0 {
            return; // every sender is gone: the server stopped
        }
        let mut writes = Vec::with_capacity(jobs.len());
        let mut waiting = Vec::with_capacity(jobs.len());
        for j in jobs.drain(..) {
            writes.push(j.write);
            waiting.push((j.undo, j.reply));
        }
        let size = writes.len();
        stats.batch_sizes.record(size as u64);
        let started = Instant::now();
        let span = tracing::debug_span!("commit_batch", size);
        let (writes, outcomes) = commit(writes).instrument(span).await;
        stats.commit_seconds.record_duration(started.elapsed());
        let mut outcomes = outcomes.into_iter();
        for (write, (undo, reply)) in writes.into_iter().zip(waiting) {
            let outcome = outcomes.next().unwrap_or_else(|| {
                Err(crate::ports::StoreError::Backend(
                    "no outcome for a write".into(),
                ))
            });
            if !succeeded(&outcome) {
                undo();
            }
            // The requester may have hung up; the change stands either way.
            let _ = reply.send((outcome, write));
        }
    }
}
