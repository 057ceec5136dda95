//! The API over real HTTP: every test starts its own server on port 0 with
//! its own SQLite file, so the tests run in parallel.

mod auth;
mod books;
mod catalog;
mod deals;
mod durability;
mod malformed;
mod orders;
mod support;
