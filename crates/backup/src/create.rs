//! Taking a backup.

use std::io::Write;
use std::time::Instant;

use confstrata_core::{DumpFrom, DumpRecord, Error, Result, Store, Timestamp};

use crate::format::{
    Counts, FORMAT_VERSION, JournalMark, KeyInfo, Kind, MANIFEST, Manifest, Parent, PartInfo,
    new_id, part_aad, part_name, sha256,
};
use crate::read::{Listed, list};
use crate::{DataKey, Keys, Target};

/// How to take a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// Incremental since the newest backup of the same store on the
    /// target, when there is one that it can continue (else full, saying why).
    pub incremental: bool,
    /// Uncompressed bytes per part, at least (a part ends after the record
    /// that reaches it).
    pub part_bytes: usize,
    /// zstd's level (1 to 19; 3 is zstd's default).
    pub level: i32,
    /// Facts the caller records in the manifest (the engine: the id of
    /// the master key the store's sealed values need).
    pub facts: std::collections::BTreeMap<String, String>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            incremental: false,
            part_bytes: 8 << 20,
            level: 3,
            facts: std::collections::BTreeMap::new(),
        }
    }
}

/// How far a backup (or a restore) has come, for progress bars and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Records so far.
    pub records: u64,
    /// Uncompressed bytes so far.
    pub plain_bytes: u64,
    /// Bytes stored (or read) so far.
    pub stored_bytes: u64,
    /// Parts written (or read) so far.
    pub parts: usize,
}

/// Records between two progress reports (besides one per part).
const REPORT_EVERY: u64 = 10_000;

/// Writes records into parts: JSON lines through zstd, sealed when a part
/// is full.
struct Parts<'a> {
    target: &'a dyn Target,
    key: &'a dyn DataKey,
    id: &'a str,
    options: CreateOptions,
    encoder: Option<zstd::Encoder<'static, Vec<u8>>>,
    line: Vec<u8>,
    part_records: u64,
    part_plain: u64,
    parts: Vec<PartInfo>,
    counts: Counts,
    progress: Progress,
    report: &'a mut dyn FnMut(Progress),
}

impl Parts<'_> {
    fn push(&mut self, record: &DumpRecord) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record).map_err(Error::storage)?;
        self.line.push(b'\n');
        let encoder = match &mut self.encoder {
            Some(e) => e,
            None => self.encoder.insert(
                zstd::Encoder::new(Vec::new(), self.options.level)
                    .map_err(|e| Error::storage(format!("zstd: {e}")))?,
            ),
        };
        encoder
            .write_all(&self.line)
            .map_err(|e| Error::storage(format!("zstd: {e}")))?;
        let n = self.line.len() as u64;
        self.part_plain += n;
        self.part_records += 1;
        self.counts.add(record);
        self.progress.records += 1;
        self.progress.plain_bytes += n;
        if self.part_plain >= self.options.part_bytes as u64 {
            self.flush()?;
        } else if self.progress.records.is_multiple_of(REPORT_EVERY) {
            (self.report)(self.progress);
        }
        Ok(())
    }

    /// Seals and writes the part being filled, if it has anything.
    fn flush(&mut self) -> Result<()> {
        let Some(encoder) = self.encoder.take() else {
            return Ok(());
        };
        let compressed = encoder
            .finish()
            .map_err(|e| Error::storage(format!("zstd: {e}")))?;
        let name = part_name(self.parts.len() + 1);
        let sealed = self.key.seal(&part_aad(self.id, &name), &compressed)?;
        self.target.put(&format!("{}/{name}", self.id), &sealed)?;
        self.parts.push(PartInfo {
            name,
            records: self.part_records,
            plain_bytes: self.part_plain,
            stored_bytes: sealed.len() as u64,
            sha256: sha256(&sealed),
        });
        self.progress.stored_bytes += sealed.len() as u64;
        self.progress.parts += 1;
        self.part_records = 0;
        self.part_plain = 0;
        (self.report)(self.progress);
        Ok(())
    }
}

/// The backup an incremental one would continue, or why there is none.
fn parent_of(
    store: &dyn Store,
    target: &dyn Target,
    keys: &dyn Keys,
    store_id: &str,
) -> Result<std::result::Result<Manifest, String>> {
    let current = store.revision()?;
    let newest = list(target)?
        .into_iter()
        .filter_map(|l: Listed| l.manifest)
        .filter(|m| m.store_id == store_id && m.revision <= current)
        .max_by_key(|m| (m.revision, m.created));
    let Some(parent) = newest else {
        return Ok(Err(format!(
            "no earlier backup of this store on {}",
            target.url()
        )));
    };
    // A parent that does not open with our key, or was altered, is not one
    // to build on.
    if let Err(e) = keys
        .open_data_key(&parent.key.wrapped)
        .and_then(|k| parent.check_seal(k.as_ref()))
    {
        return Ok(Err(format!(
            "the newest backup {} does not verify: {e}",
            parent.id
        )));
    }
    let oldest = store.oldest_revision()?;
    if oldest != parent.oldest_revision {
        return Ok(Err(format!(
            "retention moved the oldest revision from {} to {oldest} since backup {}, and an incremental backup cannot carry what retention removed",
            parent.oldest_revision, parent.id
        )));
    }
    // The journal must go on from the parent's head: if its newest
    // records were cut off, an incremental would not chain.
    if let Some(mark) = &parent.journal {
        let found = store.journal(mark.seq.saturating_sub(1), 1)?;
        if !found.first().is_some_and(|r| mark.is(&r.head())) {
            return Ok(Err(format!(
                "the journal no longer holds the record {} that backup {} ends with: it was truncated or rewritten (run `confstrata audit verify`)",
                mark.seq, parent.id
            )));
        }
    }
    Ok(Ok(parent))
}

/// Takes a backup of `store` onto `target`, online: from one read
/// snapshot, while commits go on. Returns its manifest. On any error the
/// backup's folder is removed (best effort; without a manifest it is never
/// used anyway).
pub fn create(
    store: &dyn Store,
    target: &dyn Target,
    keys: &dyn Keys,
    options: &CreateOptions,
    report: &mut dyn FnMut(Progress),
) -> Result<Manifest> {
    let store_id = store.store_id()?;
    let (parent, note) = if options.incremental {
        match parent_of(store, target, keys, &store_id)? {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some(why)),
        }
    } else {
        (None, None)
    };
    let note = match parent {
        Some(p) => match write_one(
            store,
            target,
            keys,
            options,
            report,
            &store_id,
            Some(&p),
            None,
        )? {
            Ok(m) => return Ok(m),
            Err(why) => Some(why),
        },
        None => note,
    };
    if let Some(why) = &note {
        tracing::info!(reason = %why, "taking a full backup instead of an incremental one");
    }
    let note = note.map(|why| format!("full instead of incremental: {why}"));
    write_one(store, target, keys, options, report, &store_id, None, note)?.map_err(Error::storage)
}

/// Writes one backup continuing `parent` (or a full one); `Ok(Err(why))`
/// when the snapshot turned out not to continue the parent (retention ran
/// between the check and the snapshot), having removed what it wrote.
#[expect(
    clippy::too_many_arguments,
    reason = "one backup's inputs, passed through"
)]
fn write_one(
    store: &dyn Store,
    target: &dyn Target,
    keys: &dyn Keys,
    options: &CreateOptions,
    report: &mut dyn FnMut(Progress),
    store_id: &str,
    parent: Option<&Manifest>,
    note: Option<String>,
) -> Result<std::result::Result<Manifest, String>> {
    let started = Instant::now();
    let created = Timestamp::now();
    let from = parent.map_or(DumpFrom::default(), |p| DumpFrom {
        revision: p.revision,
        journal_seq: p.journal.as_ref().map_or(0, |j| j.seq),
    });
    let id = new_id(created, store_id);
    let (key, wrapped) = keys.new_data_key()?;
    let mut parts = Parts {
        target,
        key: key.as_ref(),
        id: &id,
        options: options.clone(),
        encoder: None,
        line: Vec::new(),
        part_records: 0,
        part_plain: 0,
        parts: Vec::new(),
        counts: Counts::default(),
        progress: Progress::default(),
        report,
    };
    let written = (|| {
        let head = store.dump(from, &mut |record| parts.push(&record))?;
        parts.flush()?;
        if let Some(p) = parent
            && head.oldest_revision != p.oldest_revision
        {
            return Ok(Err(format!(
                "retention moved the oldest revision from {} to {} since backup {}, and an incremental backup cannot carry what retention removed",
                p.oldest_revision, head.oldest_revision, p.id
            )));
        }
        if head.store_id != store_id {
            return Err(Error::storage(
                "the store's identity changed while it was backed up",
            ));
        }
        let mut manifest = Manifest {
            format: FORMAT_VERSION,
            id: id.clone(),
            store_id: head.store_id,
            kind: if parent.is_some() {
                Kind::Incremental
            } else {
                Kind::Full
            },
            parent: parent.map(|p| Parent {
                id: p.id.clone(),
                revision: from.revision,
                journal_seq: from.journal_seq,
            }),
            created,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            revision: head.revision,
            revision_time: head.time,
            oldest_revision: head.oldest_revision,
            journal: head.journal.as_ref().map(JournalMark::of),
            key: KeyInfo {
                kek_id: keys.kek_id()?,
                wrapped,
            },
            counts: parts.counts,
            parts: std::mem::take(&mut parts.parts),
            note,
            facts: options.facts.clone(),
            seal: String::new(),
        };
        manifest.seal_with(key.as_ref())?;
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(Error::storage)?;
        target.put(&format!("{id}/{MANIFEST}"), &bytes)?;
        Ok(Ok(manifest))
    })();
    match written {
        Ok(Ok(manifest)) => {
            tracing::info!(
                backup = %manifest.id,
                kind = ?manifest.kind,
                revision = manifest.revision,
                parts = manifest.parts.len(),
                bytes = manifest.stored_bytes(),
                duration_ms = manifest.duration_ms,
                "backup written"
            );
            Ok(Ok(manifest))
        }
        Ok(Err(why)) => {
            if let Err(cleanup) = target.remove(&id) {
                tracing::warn!(backup = %id, error = %cleanup, "an unused backup could not be removed");
            }
            Ok(Err(why))
        }
        Err(e) => {
            if let Err(cleanup) = target.remove(&id) {
                tracing::warn!(backup = %id, error = %cleanup, "an incomplete backup could not be removed");
            }
            Err(e)
        }
    }
}
