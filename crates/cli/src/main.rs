//! `confstrata`: manage hierarchical configuration on a local store.
//!
//! Every command works on the embedded SQLite store in `--data-dir`
//! (`CONFSTRATA_DATA_DIR`, default `./confstrata-data`). Read commands take
//! `-o table|json|yaml|toml` (and `env` for documents); `-o json` is stable for
//! scripts. Errors go to stderr as one line, with a non-zero exit code.

mod args;
mod commands;
mod output;
mod serve;

use std::process::ExitCode;

use clap::Parser;

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
            ExitCode::from(exit_code(&e))
        }
    }
}

/// 1 for most errors; 3 for a conflict (retry may help); 4 for not found.
fn exit_code(e: &anyhow::Error) -> u8 {
    use confstrata_core::Error;
    match e.downcast_ref::<Error>().map(Error::root) {
        Some(Error::Conflict { .. }) => 3,
        Some(
            Error::NamespaceNotFound { .. }
            | Error::LayerNotFound { .. }
            | Error::KeyNotFound { .. },
        ) => 4,
        _ => 1,
    }
}
