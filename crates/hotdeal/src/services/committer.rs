//! Group commit: one task writes admitted orders to the store in batches.
//!
//! Requests hand their admitted order to a bounded queue and wait. The task
//! takes whatever is queued (up to `max_batch`), commits it in one go, and
//! only then answers each waiting request. While a batch is being written
//! the next one gathers in the queue, so batches grow with the load and an
//! idle server commits a lone order at once, with no timer to wait for.
//!
//! The task, not the request, gives admissions back when an order does not
//! go through: a client that hangs up mid-commit must not strand units.

use crate::model::Order;
use crate::ports::{Admitted, OrderWrite, Placement, StockAdmission, Store, StoreResult};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The answer for one order: the store's verdict and the order itself.
pub type Committed = (StoreResult<Placement>, Order);

struct Job {
    write: OrderWrite,
    admitted: Admitted,
    reply: oneshot::Sender<Committed>,
}

/// The queue is full: the caller should answer 503.
#[derive(Debug)]
pub struct QueueFull;

#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the writing task.
    pub fn start(
        store: Arc<dyn Store>,
        admission: Arc<dyn StockAdmission>,
        queue: usize,
        max_batch: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(run(store, admission, rx, max_batch.max(1)));
        Self { queue: tx }
    }

    /// Queues an admitted order. On a full queue the admission is released
    /// here and the caller refuses the request.
    pub fn submit(
        &self,
        write: OrderWrite,
        admitted: Admitted,
        admission: &dyn StockAdmission,
    ) -> Result<oneshot::Receiver<Committed>, QueueFull> {
        let (reply, rx) = oneshot::channel();
        match self.queue.try_send(Job {
            write,
            admitted,
            reply,
        }) {
            Ok(()) => Ok(rx),
            Err(e) => {
                let job = match e {
                    mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
                };
                admission.release(&job.admitted);
                Err(QueueFull)
            }
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    admission: Arc<dyn StockAdmission>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        if rx.recv_many(&mut jobs, max_batch).await == 0 {
            return; // every sender is gone: the server stopped
        }
        let (writes, rest): (Vec<OrderWrite>, Vec<(Admitted, oneshot::Sender<Committed>)>) = jobs
            .drain(..)
            .map(|j| (j.write, (j.admitted, j.reply)))
            .unzip();
        let results = store.place_orders(&writes).await;
        for ((result, write), (admitted, reply)) in results.into_iter().zip(writes).zip(rest) {
            if !matches!(result, Ok(Placement::Placed)) {
                admission.release(&admitted);
            }
            // The requester may have hung up; the order stands either way.
            let _ = reply.send((result, write.order));
        }
    }
}
