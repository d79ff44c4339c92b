//! Integration tests of the host: opening a data directory, master keys,
//! retention, scheduled backups, the watch feed.

mod backups;
mod master_key;
mod migration;
mod retention;
mod watch;
