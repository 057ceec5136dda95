//! The API over real HTTP: every test starts its own server on port 0 with
//! its own SQLite file, so the tests run in parallel.

mod auth;
mod books;
mod catalog;
mod crash;
mod deals;
mod durability;
mod hotpath;
mod malformed;
mod orders;
mod support;
