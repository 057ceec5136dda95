//! How the outside reaches the services: HTTP (axum), gRPC (tonic) between
//! the roles of a split deployment, and the gateway that fronts them.

pub mod admin;
pub mod gateway;
pub mod grpc;
pub mod http;
