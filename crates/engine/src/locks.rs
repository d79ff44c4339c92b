//! Namespace locks: which commits wait for which.
//!
//! A commit holds a lock on every namespace its outcome depends on, from
//! its check until it is in the store's writer queue (`pipeline`: later
//! validated commits are checked against the queued ones), or until it is
//! durable when it is not pipelined: shared on the namespaces it only writes
//! without validation, exclusive on everything a validation it runs reads
//! or writes (the namespaces it validates, what their rules read, what it
//! writes). So:
//!
//! - commits that validate nothing share every lock and batch in the
//!   store's group commit as before;
//! - a validation excludes every write to what it reads, and nothing else:
//!   a commit to an unrelated namespace never waits for it;
//! - two commits wait for each other only when one validates what the
//!   other touches (or both do).
//!
//! Locks are taken all at once, in namespace order, so no two commits can
//! wait for each other in a cycle. A namespace's entry lives only while
//! someone holds or waits for it, so names from refused requests do not
//! accumulate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use confstrata_core::NamespaceName;
use parking_lot::lock_api::{ArcRwLockReadGuard, ArcRwLockWriteGuard};
use parking_lot::{Mutex, RawRwLock, RwLock};

/// The lock of each namespace someone holds or waits for.
#[derive(Default)]
pub(crate) struct NamespaceLocks {
    table: Mutex<HashMap<NamespaceName, Arc<RwLock<()>>>>,
}

/// How a commit holds a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mode {
    /// Written without validation: shared with others that do the same.
    Shared,
    /// Read or written by a validation: alone.
    Exclusive,
}

/// The namespaces a commit holds, and how.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Want(pub(crate) BTreeMap<NamespaceName, Mode>);

impl Want {
    /// Adds a namespace; exclusive wins over shared.
    pub(crate) fn add(&mut self, ns: &NamespaceName, mode: Mode) {
        let m = self.0.entry(ns.clone()).or_insert(mode);
        *m = (*m).max(mode);
    }
}

enum Guard {
    Shared(#[allow(dead_code)] ArcRwLockReadGuard<RawRwLock, ()>),
    Exclusive(#[allow(dead_code)] ArcRwLockWriteGuard<RawRwLock, ()>),
}

/// Locks held; released on drop (from any thread).
pub(crate) struct Held {
    guards: Vec<Guard>,
    names: Vec<NamespaceName>,
    locks: Arc<NamespaceLocks>,
}

impl NamespaceLocks {
    fn entries(&self, want: &Want) -> Vec<(NamespaceName, Arc<RwLock<()>>, Mode)> {
        let mut table = self.table.lock();
        want.0
            .iter()
            .map(|(ns, mode)| {
                let lock = Arc::clone(table.entry(ns.clone()).or_default());
                (ns.clone(), lock, *mode)
            })
            .collect()
    }

    /// Takes every lock `want` names, in namespace order, waiting as needed.
    pub(crate) fn acquire(self: &Arc<Self>, want: Want) -> Held {
        let entries = self.entries(&want);
        let mut held = self.held(&want);
        for (ns, lock, mode) in entries {
            held.guards.push(match mode {
                Mode::Shared => Guard::Shared(lock.read_arc()),
                Mode::Exclusive => Guard::Exclusive(lock.write_arc()),
            });
            held.names.push(ns);
        }
        held
    }

    /// [`NamespaceLocks::acquire`] without waiting: `None` if any lock is
    /// taken in a conflicting mode (nothing is held then).
    pub(crate) fn try_acquire(self: &Arc<Self>, want: Want) -> Option<Held> {
        let entries = self.entries(&want);
        let mut held = self.held(&want);
        // Every name, so that dropping `held` after a failure forgets the
        // entries nobody else uses.
        held.names = entries.iter().map(|(ns, _, _)| ns.clone()).collect();
        let mut taken = true;
        for (_, lock, mode) in &entries {
            let guard = match mode {
                Mode::Shared => lock.try_read_arc().map(Guard::Shared),
                Mode::Exclusive => lock.try_write_arc().map(Guard::Exclusive),
            };
            match guard {
                Some(g) => held.guards.push(g),
                None => {
                    taken = false;
                    break;
                }
            }
        }
        // Our references go before `held` looks at who else has one.
        drop(entries);
        taken.then_some(held)
    }

    fn held(self: &Arc<Self>, want: &Want) -> Held {
        Held {
            guards: Vec::with_capacity(want.0.len()),
            names: Vec::with_capacity(want.0.len()),
            locks: Arc::clone(self),
        }
    }

    /// How many namespaces have an entry (held or waited for).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.lock().len()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.guards.clear();
        let mut table = self.locks.table.lock();
        for ns in &self.names {
            // Only the table's own reference left: nobody holds or waits.
            if table.get(ns).is_some_and(|l| Arc::strong_count(l) == 1) {
                table.remove(ns);
            }
        }
    }
}

/// The namespaces a set of names, all in one mode.
pub(crate) fn all<'a>(names: impl IntoIterator<Item = &'a NamespaceName>, mode: Mode) -> Want {
    let mut want = Want::default();
    for ns in names {
        want.add(ns, mode);
    }
    want
}

#[cfg(test)]
mod tests;
