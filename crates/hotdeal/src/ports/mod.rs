//! The traits the services need from the outside world. Each has adapters in
//! `crate::adapters`; the services never name an engine.

pub mod admission;
pub mod clock;
pub mod hasher;
pub mod store;

pub use admission::{Admitted, LimitClaim, Refused, StockAdmission};
pub use clock::{Clock, ManualClock, SystemClock};
pub use hasher::{HashError, PasswordHasher};
pub use store::{
    Cancellation, DealCreation, OrderWrite, Placement, Settled, Snapshot, StockChange, Store,
    StoreError, StoreResult,
};
