//! How the outside reaches the services: HTTP (axum), and the gateway
//! that fronts them in the split deployment.

pub mod admin;
pub mod gateway;
pub mod http;
