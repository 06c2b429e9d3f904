//! Generates Rust code for the `hts.v1` protobuf package.
//!
//! protoc comes from `protoc-bin-vendored`, so a fresh machine needs no
//! manual protoc install.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let files = [
        "proto/hts/v1/wire.proto",
        "proto/hts/v1/order_service.proto",
        "proto/hts/v1/account_service.proto",
    ];
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&files, &["proto"])?;
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    Ok(())
}
