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
mod output;
mod security;
mod serve;

use std::process::ExitCode;

use clap::Parser;
use confstrata_core::ErrorKind;

/// mimalloc: under load glibc's malloc spent a tenth of the server's CPU
/// consolidating its free lists when tonic asked for 8 KiB encode buffers
/// (docs/PERFORMANCE.md, durable commits).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
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
            let (lines, total) = backend::validation_errors(&e);
            for line in &lines {
                eprintln!("  {line}");
            }
            if total > lines.len() {
                eprintln!(
                    "  … and {} more errors; `confstrata validate` or `apply --dry-run` lists every finding",
                    total - lines.len()
                );
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The exit code of each kind of error: the one table (tested against
/// [`ErrorKind::ALL`]), the same whether the store is embedded or a server's.
const EXIT_CODES: &[(ErrorKind, u8)] = &[
    (ErrorKind::InvalidInput, 1),
    (ErrorKind::TooLarge, 1),
    (ErrorKind::AlreadyExists, 1),
    (ErrorKind::OutOfRange, 1),
    (ErrorKind::Integrity, 1),
    (ErrorKind::Unavailable, 1),
    (ErrorKind::Internal, 1),
    // Retrying (after re-reading) may help.
    (ErrorKind::Conflict, 3),
    (ErrorKind::NotFound, 4),
    // A missing, bad or revoked token, or a refused action.
    (ErrorKind::Unauthenticated, 5),
    (ErrorKind::PermissionDenied, 5),
    // A refused commit, or `validate` finding errors.
    (ErrorKind::ValidationFailed, 6),
];

/// 1 for an error of no kind (a file that cannot be read, a bad flag).
fn exit_code(e: &anyhow::Error) -> u8 {
    backend::error_kind(e)
        .and_then(|kind| EXIT_CODES.iter().find(|(k, _)| *k == kind))
        .map_or(1, |(_, code)| *code)
}

#[cfg(test)]
mod tests;
