//! Integration tests of the host: opening a data directory.

mod master_key;
mod migration;
mod retention;
