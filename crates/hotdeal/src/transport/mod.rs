//! How the outside reaches the services: HTTP (axum) today.

pub mod admin;
pub mod http;
