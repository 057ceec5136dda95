//! The API over real HTTP: every test starts its own server on port 0 with
//! its own store (an SQLite file, or a PostgreSQL schema when
//! `HOTDEAL_TEST_DATABASE_URL` is set), so the tests run in parallel.

mod auth;
mod backends;
mod books;
mod catalog;
mod cluster;
mod coupons;
mod crash;
mod deals;
mod deploy;
mod docs;
mod durability;
mod edge;
mod events;
mod freshness;
mod gateway;
mod hotpath;
mod idempotency;
mod ledger_books;
mod load;
mod malformed;
mod observability;
mod orders;
#[cfg(feature = "otlp")]
mod otlp;
mod points;
mod queue_cluster;
mod races;
mod secrets;
mod split;
mod storage;
mod support;
mod waiting_room;
