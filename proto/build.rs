//! Generates Rust code for the `hts.v1` protobuf package.
//!
//! protoc comes from `protoc-bin-vendored`, so a fresh machine needs no
//! manual protoc install. The gRPC service stubs are generated only with
//! the `grpc` feature; the messages always are.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let files = [
        "proto/hts/v1/wire.proto",
        "proto/hts/v1/order_service.proto",
        "proto/hts/v1/account_service.proto",
    ];
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_server(grpc)
        .build_client(grpc)
        .compile_protos(&files, &["proto"])?;
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    Ok(())
}
