//! Engines behind the ports: the SQLite store, the Argon2id hasher.

pub mod argon2;
pub mod sqlite;
