//! hotdeal: a flash-sale commerce backend.
//!
//! The layers, inside out:
//! - [`hotdeal_domain`]: pure rules (ids, deal windows, order states, field checks);
//! - [`ports`]: the traits the services need (store, clock, password hasher);
//! - [`adapters`]: engines behind the ports (SQLite via sqlx, Argon2id);
//! - [`services`]: the use cases (sign-up, deals, orders);
//! - [`transport`]: HTTP (axum) over the services;
//! - [`observability`]: metrics, trace context and the log pipeline;
//! - [`app`]: wiring from a [`config::Config`] to a running server.

#![forbid(unsafe_code)]

pub mod adapters;
pub mod app;
pub mod config;
pub mod model;
pub mod observability;
pub mod ports;
pub mod seed;
pub mod services;
pub mod transport;

pub use app::App;
pub use config::Config;
