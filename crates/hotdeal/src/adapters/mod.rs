//! Engines behind the ports: the SQLite and PostgreSQL stores, the
//! Argon2id hasher, the in-memory admission tier and waiting room, and
//! NATS JetStream for committed events, and the product service's stock
//! tier over gRPC (the order role of a split deployment).

pub mod argon2;
pub mod memory_admission;
pub mod memory_queue;
pub mod nats;
pub mod postgres;
pub mod product_grpc;
pub mod redis;
pub mod sqlite;
