//! The API over real HTTP: every test starts its own server on port 0 with
//! its own SQLite file, so the tests run in parallel.

mod auth;
mod books;
mod catalog;
mod coupons;
mod crash;
mod deals;
mod docs;
mod durability;
mod edge;
mod hotpath;
mod idempotency;
mod ledger_books;
mod load;
mod malformed;
mod orders;
mod points;
mod storage;
mod support;
mod waiting_room;
