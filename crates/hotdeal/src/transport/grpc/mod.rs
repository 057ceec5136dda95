//! gRPC (tonic) between the roles of a split deployment: the product
//! service answers catalogue reads and runs the stock tier for order
//! services in other processes (`proto/hotdeal/product/v1/product.proto`).
//! The same port the in-process and Redis tiers implement
//! ([`crate::ports::StockAdmission`]) is served here and implemented by
//! the client in [`crate::adapters::product_grpc`], so the order path does
//! not know which one it talks to.

pub mod convert;
mod server;

pub use server::{serve, ProductGrpc};

/// The messages, client and server generated from the `.proto` files.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    include!("generated/hotdeal.product.v1.rs");
}

/// The encoded descriptors of the services, for server reflection (so
/// `grpcurl` and similar tools list and call them without the `.proto`).
const DESCRIPTOR: &[u8] = include_bytes!("generated/descriptor.bin");
