//! The traits the services need from the outside world. Each has adapters in
//! `crate::adapters`; the services never name an engine.

pub mod admission;
pub mod clock;
pub mod events;
pub mod hasher;
pub mod ledger;
pub mod queue;
pub mod running;
pub mod store;

pub use admission::{
    CouponAdmission, CouponRefused, Hold, Increase, IssueHold, LimitClaim, Refused, StockAdmission,
    Verdict,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use events::{CatalogueEvent, EventHandler, EventSink, HandleError, Reload, SinkError};
pub use hasher::{HashError, PasswordHasher};
pub use ledger::{
    Charge, CouponLedger, IdempotencyAnswers, IssueWrite, Issued, Ledger, Outbox, OutboxEntry,
    PointsLedger,
};
pub use queue::{NotAdmitted, QueueDeal, QueueError, QueueStore, Ticket, TicketState};
pub use running::{MarksUnavailable, RunningKeys};
pub use store::{
    CancelBy, Cancellation, CatalogReads, CatalogStore, DealCreation, IdempotencyWrite, OrderStore,
    OrderWrite, Payment, Placement, ReservationFence, Settled, Snapshot, StockChange, Store,
    StoreError, StoreHealth, StoreResult, UserStore,
};
