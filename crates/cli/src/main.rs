//! `confstrata`: run the server, and manage hierarchical configuration on an
//! embedded store or a server.
//!
//! Every command works on the embedded SQLite store in `--data-dir`
//! (`CONFSTRATA_DATA_DIR`, default `./confstrata-data`), or with `--addr`
//! (`CONFSTRATA_ADDR`) on a server, with the same output. Read commands take
//! `-o table|json|yaml|toml` (and `env` for documents); `-o json` is stable for
//! scripts. Errors go to stderr as one line, with a non-zero exit code.

mod args;
mod backend;
mod commands;
mod errors;
mod input;
mod output;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: under load glibc's malloc spent a tenth of the server's CPU
/// consolidating its free lists when tonic asked for 8 KiB encode buffers
/// (docs/PERFORMANCE.md, durable commits).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // An answer already printed (`auth can-i`: no).
        Err(e) if e.downcast_ref::<errors::Answered>().is_some() => {
            ExitCode::from(e.downcast_ref::<errors::Answered>().map_or(1, |a| a.0))
        }
        Err(e) => {
            // One line: the chain of causes, skipping a cause that its
            // parent's message already includes.
            let mut msg = String::new();
            for cause in e.chain() {
                let text = cause.to_string();
                if !msg.contains(&text) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&text);
                }
            }
            let msg = msg.replace('\n', " ");
            eprintln!("error: {msg}");
            // A refused commit: its first findings, one per line, and how
            // many more there are.
            let (lines, total) = errors::validation_errors(&e);
            for line in &lines {
                eprintln!("  {line}");
            }
            if total > lines.len() {
                eprintln!(
                    "  … and {} more errors; `confstrata validate` or `apply --dry-run` lists every finding",
                    total - lines.len()
                );
            }
            ExitCode::from(errors::exit_code(&e))
        }
    }
}
