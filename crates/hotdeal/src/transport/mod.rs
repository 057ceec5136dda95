//! How the outside reaches the services: HTTP (axum), and gRPC (tonic)
//! between the roles of a split deployment.

pub mod admin;
pub mod grpc;
pub mod http;
