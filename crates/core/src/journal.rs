//! The journal: an append-only log of records a store keeps beside the
//! revisions, written in the same transaction as the change it describes.
//!
//! The store orders, stores and returns journal records but cannot make or
//! check them: a record's MAC is keyed with a secret the store never sees
//! (the audit key, `confstrata-access`). So a commit hands the store a
//! [`JournalFn`], which the store calls inside the commit's transaction with
//! the revision the change got and the last record before it; if the
//! function fails, or the record cannot be stored, the change is not
//! committed. That is how a change whose audit record cannot be written
//! never happens.
//!
//! Settings are small named values (the wrapped data keys, the access
//! policy) that are not versioned configuration; a setting changes in the
//! same transaction as the journal record that explains it.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::Timestamp;

/// The last record of the journal: where the next one chains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHead {
    /// Its position, from 1.
    pub seq: u64,
    /// Its MAC.
    pub mac: [u8; 32],
}

/// One journal record as stored: the fields a store indexes, and the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// Its position: the head's `seq + 1` (1 for the first).
    pub seq: u64,
    /// When it happened.
    pub time: Timestamp,
    /// The revision it describes, if any.
    pub revision: Option<u64>,
    /// Its MAC, which the next record chains on.
    pub mac: [u8; 32],
    /// The whole record, as its maker serialized it.
    pub body: String,
}

impl JournalRecord {
    /// The head after this record.
    pub fn head(&self) -> JournalHead {
        JournalHead {
            seq: self.seq,
            mac: self.mac,
        }
    }
}

/// What a store tells a [`JournalFn`] inside the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalSlot {
    /// The revision the change got (`None` for a record without a commit).
    pub revision: Option<u64>,
    /// The last record stored before this one, in this transaction or
    /// earlier (`None` if the journal is empty).
    pub head: Option<JournalHead>,
}

/// Makes the journal record of one change, inside its transaction. Its
/// `seq` must be the head's plus one; a store refuses any other.
pub type JournalFn = Box<dyn FnOnce(JournalSlot) -> Result<JournalRecord> + Send>;

/// Checks a change set's plan against the state it will land on, inside
/// the store's transaction: after the change sets committed before it in
/// the same group commit, before its own writes. An error refuses this
/// change set alone (nothing of it is written) and is what its caller gets;
/// the others in the batch are not affected. The reader reads that state.
pub type CheckFn = Box<dyn FnOnce(&crate::Plan, &mut dyn crate::StateReader) -> Result<()> + Send>;

/// A named setting and its new value (`None` removes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingWrite {
    /// Its name, such as `keyring/payments` or `policy`.
    pub key: String,
    /// Its new value.
    pub value: Option<String>,
}
