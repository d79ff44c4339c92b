//! An in-memory [`Store`], for tests and for programs that need no durability.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::changeset::{ChangeSet, StateReader, plan};
use crate::doc::{Document, Limits};
use crate::dump::{DumpFrom, DumpHead, DumpRecord, LoadEnd, new_store_id};
use crate::error::{Error, Result};
use crate::journal::{JournalFn, JournalHead, JournalRecord, JournalSlot, SettingWrite};
use crate::namespace::NamespaceSpec;
use crate::path::{LayerPath, NamespaceName};
use crate::store::{
    Change, ChangeItem, CommitInfo, DeclarationVersion, LayerRecord, LayerVersion, NamespaceRecord,
    RetentionPolicy, RetentionReport, RevisionInfo, Store, Timestamp, check_readable,
    retention_floor,
};

type Versions<T> = Vec<(u64, Option<T>)>;

#[derive(Default)]
struct Inner {
    revisions: Vec<RevisionInfo>,
    current: u64,
    oldest: u64,
    namespaces: BTreeMap<NamespaceName, Versions<NamespaceSpec>>,
    layers: BTreeMap<(NamespaceName, LayerPath), Versions<Document>>,
    journal: Vec<JournalRecord>,
    settings: BTreeMap<String, String>,
    /// Made on first use.
    store_id: Option<String>,
}

fn at<T: Clone>(versions: &Versions<T>, revision: u64) -> Option<(T, u64)> {
    versions
        .iter()
        .rev()
        .find(|(r, _)| *r <= revision)
        .and_then(|(r, v)| v.clone().map(|v| (v, *r)))
}

/// A [`Store`] that keeps everything in memory, with the same semantics as the
/// durable stores. Use it in tests.
///
/// ```
/// use confstrata_core::{MemoryStore, Store};
/// let store = MemoryStore::new();
/// assert_eq!(store.revision().unwrap(), 0);
/// ```
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    limits: Limits,
}

impl MemoryStore {
    /// An empty store with default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        MemoryStore {
            inner: Mutex::default(),
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-written:
        // commits build their writes first and apply them without failing.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StateReader for Inner {
    fn current_revision(&mut self) -> Result<u64> {
        Ok(self.current)
    }
    fn namespace(&mut self, name: &NamespaceName) -> Result<Option<(NamespaceSpec, u64)>> {
        Ok(self.namespaces.get(name).and_then(|v| at(v, self.current)))
    }
    fn layer(&mut self, ns: &NamespaceName, layer: &LayerPath) -> Result<Option<(Document, u64)>> {
        Ok(self
            .layers
            .get(&(ns.clone(), layer.clone()))
            .and_then(|v| at(v, self.current)))
    }
    fn layer_paths(&mut self, ns: &NamespaceName) -> Result<Vec<LayerPath>> {
        Ok(self
            .layers
            .iter()
            .filter(|((n, _), v)| n == ns && at(v, self.current).is_some())
            .map(|((_, l), _)| l.clone())
            .collect())
    }
    fn namespace_names(&mut self) -> Result<Vec<NamespaceName>> {
        Ok(self
            .namespaces
            .iter()
            .filter(|(_, v)| at(v, self.current).is_some())
            .map(|(n, _)| n.clone())
            .collect())
    }
}

impl Inner {
    fn check(&self, revision: u64) -> Result<()> {
        check_readable(revision, self.oldest, self.current)
    }
    fn info(&self, revision: u64) -> Option<RevisionInfo> {
        self.revisions
            .iter()
            .find(|r| r.revision == revision)
            .cloned()
    }
}

impl Store for MemoryStore {
    fn revision(&self) -> Result<u64> {
        Ok(self.lock().current)
    }

    fn oldest_revision(&self) -> Result<u64> {
        Ok(self.lock().oldest)
    }

    fn revision_for_time(&self, time: Timestamp) -> Result<u64> {
        let inner = self.lock();
        Ok(inner
            .revisions
            .iter()
            .rev()
            .find(|r| r.time <= time)
            .map_or(0, |r| r.revision))
    }

    fn revision_info(&self, revision: u64) -> Result<Option<RevisionInfo>> {
        Ok(self.lock().info(revision))
    }

    fn namespace(&self, name: &NamespaceName, revision: u64) -> Result<Option<NamespaceRecord>> {
        let inner = self.lock();
        inner.check(revision)?;
        Ok(inner
            .namespaces
            .get(name)
            .and_then(|v| at(v, revision))
            .map(|(spec, revision)| NamespaceRecord { spec, revision }))
    }

    fn namespaces(&self, revision: u64) -> Result<Vec<NamespaceRecord>> {
        let inner = self.lock();
        inner.check(revision)?;
        Ok(inner
            .namespaces
            .values()
            .filter_map(|v| at(v, revision))
            .map(|(spec, revision)| NamespaceRecord { spec, revision })
            .collect())
    }

    fn layer(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
        revision: u64,
    ) -> Result<Option<LayerRecord>> {
        let inner = self.lock();
        inner.check(revision)?;
        Ok(inner
            .layers
            .get(&(ns.clone(), layer.clone()))
            .and_then(|v| at(v, revision))
            .map(|(document, revision)| {
                LayerRecord::new(ns.clone(), layer.clone(), document, revision)
            }))
    }

    fn layers(&self, ns: &NamespaceName, revision: u64) -> Result<Vec<LayerRecord>> {
        let inner = self.lock();
        inner.check(revision)?;
        Ok(inner
            .layers
            .iter()
            .filter(|((n, _), _)| n == ns)
            .filter_map(|((n, l), v)| {
                at(v, revision).map(|(document, revision)| {
                    LayerRecord::new(n.clone(), l.clone(), document, revision)
                })
            })
            .collect())
    }

    fn declaration_history(
        &self,
        ns: &NamespaceName,
        limit: usize,
    ) -> Result<Vec<DeclarationVersion>> {
        let inner = self.lock();
        let mut out: Vec<DeclarationVersion> = inner
            .namespaces
            .get(ns)
            .map(|versions| {
                versions
                    .iter()
                    .filter_map(|(r, s)| {
                        Some(DeclarationVersion {
                            info: inner.info(*r)?,
                            spec: s.clone(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|v| std::cmp::Reverse(v.info.revision));
        out.truncate(limit);
        Ok(out)
    }

    fn history(
        &self,
        ns: &NamespaceName,
        layer: Option<&LayerPath>,
        limit: usize,
    ) -> Result<Vec<LayerVersion>> {
        let inner = self.lock();
        let mut out: Vec<LayerVersion> = inner
            .layers
            .iter()
            .filter(|((n, l), _)| n == ns && layer.is_none_or(|want| want == l))
            .flat_map(|((n, l), versions)| {
                versions.iter().filter_map(|(r, d)| {
                    Some(LayerVersion {
                        info: inner.info(*r)?,
                        namespace: n.clone(),
                        layer: l.clone(),
                        document: d.clone(),
                        partial: false,
                    })
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.info
                .revision
                .cmp(&a.info.revision)
                .then(a.layer.cmp(&b.layer))
        });
        out.truncate(limit);
        Ok(out)
    }

    fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>> {
        let inner = self.lock();
        if after < inner.oldest.saturating_sub(1) {
            return Err(Error::Compacted {
                requested: after,
                oldest: inner.oldest,
            });
        }
        let mut out = Vec::new();
        for info in inner
            .revisions
            .iter()
            .filter(|r| r.revision > after)
            .take(limit)
        {
            let mut items = Vec::new();
            for (n, v) in &inner.namespaces {
                for (r, s) in v {
                    if *r == info.revision {
                        items.push(ChangeItem {
                            namespace: n.clone(),
                            layer: None,
                            deleted: s.is_none(),
                        });
                    }
                }
            }
            for ((n, l), v) in &inner.layers {
                for (r, d) in v {
                    if *r == info.revision {
                        items.push(ChangeItem {
                            namespace: n.clone(),
                            layer: Some(l.clone()),
                            deleted: d.is_none(),
                        });
                    }
                }
            }
            out.push(Change {
                info: info.clone(),
                items,
            });
        }
        Ok(out)
    }

    fn commit_checked(
        &self,
        changes: &ChangeSet,
        journal: Option<JournalFn>,
        check: Option<crate::CheckFn>,
    ) -> Result<CommitInfo> {
        let mut inner = self.lock();
        let plan = plan(changes, &mut *inner, &self.limits)?;
        if let Some(check) = check {
            check(&plan, &mut *inner)?;
        }
        let revision = inner.current + 1;
        let last = inner.revisions.last().map_or(Timestamp(0), |r| r.time);
        let time = Timestamp::now().max(last);
        // The record first: if it cannot be made, nothing changes.
        if let Some(f) = journal {
            let record = make_record(&inner.journal, Some(revision), f)?;
            inner.journal.push(record);
        }
        inner.revisions.push(RevisionInfo {
            revision,
            time,
            author: changes.author.clone(),
            message: changes.message.clone(),
        });
        for name in plan.deleted {
            inner
                .namespaces
                .entry(name)
                .or_default()
                .push((revision, None));
        }
        for spec in plan.namespaces {
            inner
                .namespaces
                .entry(spec.name.clone())
                .or_default()
                .push((revision, Some(spec)));
        }
        for (ns, layer, doc) in plan.layers {
            inner
                .layers
                .entry((ns, layer))
                .or_default()
                .push((revision, doc));
        }
        inner.current = revision;
        Ok(CommitInfo { revision, time })
    }

    fn append_journal(&self, journal: JournalFn) -> Result<JournalRecord> {
        let mut inner = self.lock();
        let record = make_record(&inner.journal, None, journal)?;
        inner.journal.push(record.clone());
        Ok(record)
    }

    fn write_settings(&self, writes: &[SettingWrite], journal: Option<JournalFn>) -> Result<()> {
        let mut inner = self.lock();
        if let Some(f) = journal {
            let record = make_record(&inner.journal, None, f)?;
            inner.journal.push(record);
        }
        for w in writes {
            match &w.value {
                Some(v) => inner.settings.insert(w.key.clone(), v.clone()),
                None => inner.settings.remove(&w.key),
            };
        }
        Ok(())
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self.lock().settings.get(key).cloned())
    }

    fn settings(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        Ok(self
            .lock()
            .settings
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn journal(&self, after: u64, limit: usize) -> Result<Vec<JournalRecord>> {
        let inner = self.lock();
        let start = inner.journal.partition_point(|r| r.seq <= after);
        Ok(inner.journal[start..].iter().take(limit).cloned().collect())
    }

    fn store_id(&self) -> Result<String> {
        Ok(self
            .lock()
            .store_id
            .get_or_insert_with(new_store_id)
            .clone())
    }

    fn dump(
        &self,
        from: DumpFrom,
        sink: &mut dyn FnMut(DumpRecord) -> Result<()>,
    ) -> Result<DumpHead> {
        // The lock is the snapshot: commits wait until the dump is written.
        let mut inner = self.lock();
        let store_id = inner.store_id.get_or_insert_with(new_store_id).clone();
        for info in inner
            .revisions
            .iter()
            .filter(|r| r.revision > from.revision)
        {
            sink(DumpRecord::Revision(info.clone()))?;
        }
        for (name, versions) in &inner.namespaces {
            for (revision, spec) in versions.iter().filter(|(r, _)| *r > from.revision) {
                sink(DumpRecord::Namespace {
                    name: name.clone(),
                    revision: *revision,
                    spec: spec.clone().map(Box::new),
                })?;
            }
        }
        for ((namespace, layer), versions) in &inner.layers {
            for (revision, document) in versions.iter().filter(|(r, _)| *r > from.revision) {
                sink(DumpRecord::Layer {
                    namespace: namespace.clone(),
                    layer: layer.clone(),
                    revision: *revision,
                    document: document.clone(),
                })?;
            }
        }
        for record in inner.journal.iter().filter(|r| r.seq > from.journal_seq) {
            sink(DumpRecord::Journal(record.clone()))?;
        }
        for (key, value) in &inner.settings {
            sink(DumpRecord::Setting {
                key: key.clone(),
                value: value.clone(),
            })?;
        }
        Ok(DumpHead {
            store_id,
            revision: inner.current,
            time: inner.revisions.last().map_or(Timestamp(0), |r| r.time),
            oldest_revision: inner.oldest,
            journal: inner.journal.last().map(JournalRecord::head),
        })
    }

    fn load(
        &self,
        records: &mut dyn Iterator<Item = Result<DumpRecord>>,
        end: &LoadEnd,
    ) -> Result<()> {
        let mut inner = self.lock();
        if inner.current != 0 || !inner.journal.is_empty() || !inner.settings.is_empty() {
            return Err(Error::invalid(
                "store",
                "a dump loads only into an empty store; this one has data",
            ));
        }
        let mut new = Inner::default();
        for record in records {
            match record? {
                DumpRecord::Revision(info) => {
                    crate::dump::check_ascending(
                        new.revisions.last().map(|r| r.revision),
                        info.revision,
                        "revision",
                    )?;
                    new.current = info.revision;
                    new.revisions.push(info);
                }
                DumpRecord::Namespace {
                    name,
                    revision,
                    spec,
                } => {
                    let versions = new.namespaces.entry(name.clone()).or_default();
                    crate::dump::check_ascending(
                        versions.last().map(|(r, _)| *r),
                        revision,
                        &format!("namespace {name}"),
                    )?;
                    versions.push((revision, spec.map(|s| *s)));
                }
                DumpRecord::Layer {
                    namespace,
                    layer,
                    revision,
                    document,
                } => {
                    let what = format!("layer {namespace}:{layer}");
                    let versions = new.layers.entry((namespace, layer)).or_default();
                    crate::dump::check_ascending(
                        versions.last().map(|(r, _)| *r),
                        revision,
                        &what,
                    )?;
                    versions.push((revision, document));
                }
                DumpRecord::Journal(record) => {
                    check_next(new.journal.last().map(JournalRecord::head), &record)?;
                    new.journal.push(record);
                }
                DumpRecord::Setting { key, value } => {
                    new.settings.insert(key, value);
                }
            }
        }
        let newest_version = new
            .namespaces
            .values()
            .filter_map(|v| v.last().map(|(r, _)| *r))
            .chain(
                new.layers
                    .values()
                    .filter_map(|v| v.last().map(|(r, _)| *r)),
            )
            .max()
            .unwrap_or(0);
        if newest_version > new.current {
            return Err(Error::storage(format!(
                "the dump holds a version at revision {newest_version} but its newest revision is {}",
                new.current
            )));
        }
        new.oldest = end.oldest_revision.min(new.current);
        if let Some(resume) = &end.resume {
            crate::dump::check_ascending(Some(new.current), resume.revision, "revision")?;
            new.current = resume.revision;
            new.revisions.push(resume.clone());
        }
        new.store_id = Some(end.store_id.clone());
        *inner = new;
        Ok(())
    }

    fn apply_retention(&self, policy: &RetentionPolicy, now: Timestamp) -> Result<RetentionReport> {
        let mut inner = self.lock();
        let revs: Vec<Vec<u64>> = inner
            .namespaces
            .values()
            .map(|v| v.iter().map(|(r, _)| *r).collect())
            .chain(
                inner
                    .layers
                    .values()
                    .map(|v| v.iter().map(|(r, _)| *r).collect()),
            )
            .collect();
        let times: Vec<(u64, Timestamp)> = inner
            .revisions
            .iter()
            .map(|r| (r.revision, r.time))
            .collect();
        let floor = retention_floor(
            policy,
            now,
            inner.current,
            inner.oldest,
            revs.iter().map(Vec::as_slice),
            &times,
        );
        let mut removed = 0;
        fn prune<T>(v: &mut Versions<T>, floor: u64) -> usize {
            let keep_from = v.iter().rposition(|(r, _)| *r <= floor).unwrap_or(0);
            let mut n = keep_from;
            v.drain(..keep_from);
            if matches!(v.first(), Some((r, None)) if *r <= floor) {
                v.remove(0);
                n += 1;
            }
            n
        }
        for v in inner.namespaces.values_mut() {
            removed += prune(v, floor);
        }
        for v in inner.layers.values_mut() {
            removed += prune(v, floor);
        }
        inner.namespaces.retain(|_, v| !v.is_empty());
        inner.layers.retain(|_, v| !v.is_empty());
        inner.revisions.retain(|r| r.revision >= floor);
        inner.oldest = floor;
        Ok(RetentionReport {
            oldest_revision: floor,
            removed_versions: removed,
            freed_bytes: 0,
        })
    }
}

/// Calls a journal function for the next record and checks its `seq`.
pub(crate) fn make_record(
    journal: &[JournalRecord],
    revision: Option<u64>,
    f: JournalFn,
) -> Result<JournalRecord> {
    let head = journal.last().map(JournalRecord::head);
    let record = f(JournalSlot { revision, head })?;
    check_next(head, &record)?;
    Ok(record)
}

/// Refuses a record that does not continue the journal at `head`.
pub fn check_next(head: Option<JournalHead>, record: &JournalRecord) -> Result<()> {
    let want = head.map_or(1, |h| h.seq.saturating_add(1));
    if record.seq != want {
        return Err(Error::storage(format!(
            "journal record seq {} does not follow seq {}; nothing was written",
            record.seq,
            want - 1
        )));
    }
    Ok(())
}
