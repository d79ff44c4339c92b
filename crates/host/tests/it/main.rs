//! Integration tests of the host: opening a data directory, master keys,
//! retention, the watch feed.

mod master_key;
mod migration;
mod retention;
mod watch;
