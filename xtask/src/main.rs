//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: exactly what CI runs: fmt check, clippy (warnings are errors),
//!   every test (cargo-nextest when installed, else cargo test; one of them
//!   checks that the checked-in OpenAPI description is current), doc tests.
//!   The tidy checks run as ordinary tests of this crate.
//! - `codegen [--check]`: regenerate the checked-in gRPC code from `proto/`
//!   (or check that it is up to date).
//! - `openapi [--check]`: write the REST API's OpenAPI description to
//!   `docs/openapi.json` (or check that it is current).
//! - `tidy`: only the tidy checks (dependency direction).
//! - `bench`: the criterion benches (`-- <filter>` passes a filter).

#![allow(
    clippy::print_stdout,
    reason = "printing progress is this binary's job"
)]

mod codegen;
mod openapi;
mod tidy;

use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("codegen") => codegen::run(args.iter().any(|a| a == "--check")),
        Some("openapi") => openapi::run(args.iter().any(|a| a == "--check")),
        Some("tidy") => {
            let problems = tidy::check_dependencies(&tidy::metadata()?)?;
            if problems.is_empty() {
                println!("tidy: dependency direction OK");
                Ok(())
            } else {
                bail!("tidy found problems:\n{}", problems.join("\n"))
            }
        }
        Some("bench") => {
            let mut cmd = vec!["bench", "-p", "confstrata-benches"];
            let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            cmd.extend(rest);
            cargo(&cmd)
        }
        _ => {
            println!(
                "usage: cargo xtask <ci|codegen [--check]|openapi [--check]|tidy|bench [-- FILTER]>"
            );
            bail!("unknown or missing command")
        }
    }
}

fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    codegen::run(true)?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    let nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if nextest {
        cargo(&[
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
        ])?;
    } else {
        cargo(&["test", "--workspace", "--locked", "--no-fail-fast"])?;
    }
    // The checked-in OpenAPI description is checked by a test of the CLI
    // crate (`openapi::the_openapi_command_prints_the_checked_in_file`), on
    // the binary the tests built: `cargo run -p confstrata-cli` here would
    // build the whole tree again with the CLI's own feature set.
    cargo(&["test", "--doc", "--workspace", "--locked"])?;
    println!("xtask ci: all steps passed");
    Ok(())
}

fn cargo(args: &[&str]) -> Result<()> {
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}
