//! The rules of hotdeal with no I/O: identifiers, money, quantities, deal
//! windows, order states, field validation and order pricing.
//!
//! Everything here is synchronous and deterministic, so it is tested with
//! plain unit and property tests; the services above it only orchestrate.

#![forbid(unsafe_code)]

pub mod deal;
pub mod ids;
pub mod order;
pub mod validate;

pub use deal::{DealStatus, DealWindow};
pub use ids::{DealId, OrderId, ProductId, UserId};
pub use order::{
    sum_demands, LineDemand, OrderStatus, PaymentStatus, StockKey, MAX_LINES, MAX_LINE_QUANTITY,
};
pub use validate::{FieldErrors, Validator};
