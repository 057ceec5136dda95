//! Engines behind the ports: the SQLite and PostgreSQL stores, the
//! Argon2id hasher, the in-memory admission tier.

pub mod argon2;
pub mod memory_admission;
pub mod postgres;
pub mod sqlite;
