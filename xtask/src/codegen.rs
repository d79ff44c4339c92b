//! `cargo xtask codegen [--check]`: compiles `proto/` with protox (no
//! `protoc`) and tonic-prost-build into `crates/proto/src/generated/`.
//! With `--check`, generates into a scratch directory and fails if the
//! checked-in code differs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use prost::Message;

const OUT: &str = "crates/proto/src/generated";
const DESCRIPTOR: &str = "confstrata_descriptor.bin";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.proto` under `proto/`, relative to it, sorted.
fn protos(dir: &Path, base: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            protos(&path, base, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            let rel = path
                .strip_prefix(base)?
                .to_string_lossy()
                .replace('\\', "/");
            out.push(rel);
        }
    }
    out.sort();
    Ok(())
}

fn generate(out: &Path) -> Result<()> {
    let proto_dir = root().join("proto");
    let mut files = Vec::new();
    protos(&proto_dir, &proto_dir, &mut files)?;
    let fds = protox::compile(&files, [&proto_dir]).context("compiling proto/ with protox")?;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join(DESCRIPTOR), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Malformed request bodies are the caller's fault: INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::codec::Codec")
        .out_dir(out)
        .compile_fds(fds)
        .context("generating Rust from the descriptors")?;
    Ok(())
}

pub(crate) fn run(check: bool) -> Result<()> {
    let target = root().join(OUT);
    if !check {
        generate(&target)?;
        println!("codegen: wrote {}", target.display());
        return Ok(());
    }
    let scratch = std::env::temp_dir().join(format!("confstrata-codegen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    generate(&scratch)?;
    let mut drift = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for dir in [&scratch, &target] {
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    for name in names {
        let fresh = std::fs::read(scratch.join(&name)).ok();
        let checked_in = std::fs::read(target.join(&name)).ok();
        if fresh != checked_in {
            drift.push(name);
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if !drift.is_empty() {
        bail!(
            "generated code in {OUT} is out of date ({}); run `cargo xtask codegen` and commit the result",
            drift.join(", ")
        );
    }
    println!("codegen: {OUT} is up to date");
    Ok(())
}
