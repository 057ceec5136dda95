#!/usr/bin/env bash
# Regenerates crates/hotdeal/src/transport/grpc/generated/ from the .proto
# files (needs protoc: `apt-get install protobuf-compiler`), then formats it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --manifest-path proto/codegen/Cargo.toml
rustfmt --edition 2021 crates/hotdeal/src/transport/grpc/generated/*.rs
