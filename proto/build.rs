//! Generates the baton.v1 code with a vendored protoc, so a fresh machine
//! needs nothing but cargo.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the
    // environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("PROTOC", protoc);
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let files =
        ["baton/v1/controller.proto", "baton/v1/broker_session.proto", "baton/v1/raft.proto", "baton/v1/agent.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("baton_descriptor.bin"))
        .compile_protos(&files, &["."])?;
    Ok(())
}
