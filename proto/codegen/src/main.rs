//! Writes the Rust code of the gRPC services (messages, client and server)
//! and the encoded descriptor set that server reflection serves, from the
//! `.proto` files under `proto/`. Usage: `proto/generate.sh`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let proto = root.join("proto");
    let out = root.join("crates/hotdeal/src/transport/grpc/generated");
    std::fs::create_dir_all(&out)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(out.join("descriptor.bin"))
        .out_dir(&out)
        .compile_protos(&[proto.join("hotdeal/product/v1/product.proto")], &[proto])?;
    Ok(())
}
