//! Reading backups back: listing, chains, restore and verification.

use std::collections::VecDeque;
use std::io::BufRead;

use confstrata_core::dump::{LoadEnd, RESTORE_AUTHOR, new_store_id};
use confstrata_core::{DumpRecord, Error, MemoryStore, Result, RevisionInfo, Store, Timestamp};

use crate::create::Progress;
use crate::format::{Kind, MANIFEST, Manifest, PartInfo, integrity, part_aad, sha256};
use crate::{DataKey, Keys, Target};

/// How a listing marks a backup without a manifest.
pub(crate) const INCOMPLETE: &str = "incomplete";

/// One backup folder on a target.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its id.
    pub id: String,
    /// Its manifest, when it has a readable one (not checked against its
    /// seal: that needs the key, see [`verify`]).
    pub manifest: Option<Manifest>,
    /// Why it has none: incomplete (no manifest yet, or never finished),
    /// or a manifest that does not parse.
    pub problem: Option<String>,
}

/// The backups on a target, oldest first.
pub fn list(target: &dyn Target) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for id in target.list()? {
        let listed = match target.get(&format!("{id}/{MANIFEST}"))? {
            None => Listed {
                id,
                manifest: None,
                problem: Some(format!(
                    "{INCOMPLETE}: no manifest (being written, or interrupted)"
                )),
            },
            Some(bytes) => match Manifest::parse(&id, &bytes) {
                Ok(m) => Listed {
                    id,
                    manifest: Some(m),
                    problem: None,
                },
                Err(e) => Listed {
                    id,
                    manifest: None,
                    problem: Some(e.to_string()),
                },
            },
        };
        out.push(listed);
    }
    out.sort_by(|a, b| {
        let key = |l: &Listed| l.manifest.as_ref().map(|m| (m.created, m.revision));
        key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
    });
    Ok(out)
}

/// The newest complete backup of `store_id` on a target (by revision), if
/// any: what "the age of the newest backup" is measured from.
pub fn latest_good(target: &dyn Target, store_id: &str) -> Result<Option<Manifest>> {
    Ok(list(target)?
        .into_iter()
        .filter_map(|l| l.manifest)
        .filter(|m| m.store_id == store_id)
        .max_by_key(|m| (m.revision, m.created)))
}

/// A backup's manifest and its opened data key, seal checked.
struct Opened {
    manifest: Manifest,
    key: Box<dyn DataKey>,
}

fn open(target: &dyn Target, keys: &dyn Keys, id: &str) -> Result<Opened> {
    let bytes = target.get(&format!("{id}/{MANIFEST}"))?.ok_or_else(|| {
        Error::invalid(
            "backup",
            format!(
                "backup {id} on {} has no manifest: it does not exist or is incomplete",
                target.url()
            ),
        )
    })?;
    let manifest = Manifest::parse(id, &bytes)?;
    let ours = keys.kek_id()?;
    if manifest.key.kek_id != ours {
        return Err(integrity(format!(
            "backup {id} was encrypted under key {}, and the key given is {ours}: use the master key or backup key file it was made with",
            manifest.key.kek_id
        )));
    }
    let key = keys
        .open_data_key(&manifest.key.wrapped)
        .map_err(|e| integrity(format!("backup {id}: its data key does not open ({e})")))?;
    manifest.check_seal(key.as_ref())?;
    Ok(Opened { manifest, key })
}

/// Backup `id`'s manifest, its seal checked with `keys` (it was not
/// changed by anyone without the key).
pub fn open_manifest(target: &dyn Target, keys: &dyn Keys, id: &str) -> Result<Manifest> {
    Ok(open(target, keys, id)?.manifest)
}

/// The chain that ends at backup `id`: its full backup first, then each
/// incremental after it. Every link is checked: present, sealed under the
/// same store, continuing its parent exactly.
fn chain(target: &dyn Target, keys: &dyn Keys, id: &str) -> Result<Vec<Opened>> {
    let mut out = vec![open(target, keys, id)?];
    loop {
        let child = out.last().map(|o| &o.manifest);
        let Some(parent) = child.and_then(|m| m.parent.clone()) else {
            break;
        };
        let child_id = child.map(|m| m.id.clone()).unwrap_or_default();
        if out.len() > 100_000 {
            return Err(integrity(format!("backup {id}: its chain loops")));
        }
        let opened = open(target, keys, &parent.id).map_err(|e| {
            integrity(format!(
                "backup {id}: the chain is broken at {child_id}, whose parent {} cannot be used: {e}",
                parent.id
            ))
        })?;
        let m = &opened.manifest;
        let child_store = out
            .last()
            .map(|o| o.manifest.store_id.clone())
            .unwrap_or_default();
        if m.store_id != child_store {
            return Err(integrity(format!(
                "backup {id}: the chain is broken at {child_id}: its parent {} is a backup of another store ({} instead of {child_store})",
                m.id, m.store_id
            )));
        }
        let head_seq = m.journal.as_ref().map_or(0, |j| j.seq);
        if m.revision != parent.revision || head_seq != parent.journal_seq {
            return Err(integrity(format!(
                "backup {id}: the chain is broken at {child_id}: it continues revision {} and journal record {} but its parent {} ends at revision {} and record {head_seq}",
                parent.revision, parent.journal_seq, m.id, m.revision
            )));
        }
        out.push(opened);
    }
    out.reverse();
    if out.first().map(|o| o.manifest.kind) != Some(Kind::Full) {
        return Err(integrity(format!(
            "backup {id}: its chain does not start with a full backup"
        )));
    }
    Ok(out)
}

/// A part being read: its backup's index in the chain, its name, its
/// lines and how many were read.
type OpenPart = (usize, String, std::io::Lines<std::io::Cursor<Vec<u8>>>, u64);

/// Which records of a chain a restore keeps.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// Everything.
    All,
    /// Up to a revision.
    Revision(u64),
    /// Up to the last commit at or before a time.
    Time(Timestamp),
}

/// The records of a chain, in a dump's order, part by part: each part's
/// checksum checked, opened, decompressed and parsed, and cut at a
/// revision or time.
struct Records<'a> {
    target: &'a dyn Target,
    chain: &'a [Opened],
    /// (index in the chain, part) still to read.
    parts: VecDeque<(usize, PartInfo)>,
    lines: Option<OpenPart>,
    cut: Cut,
    /// The newest revision kept so far.
    kept_revision: u64,
    /// Its time.
    kept_time: Timestamp,
    /// A journal record after the cut was seen: none after it is kept.
    journal_done: bool,
    progress: Progress,
    report: &'a mut dyn FnMut(Progress),
    failed: bool,
}

impl<'a> Records<'a> {
    fn new(
        target: &'a dyn Target,
        chain: &'a [Opened],
        cut: Cut,
        report: &'a mut dyn FnMut(Progress),
    ) -> Records<'a> {
        let parts = chain
            .iter()
            .enumerate()
            .flat_map(|(i, o)| o.manifest.parts.iter().map(move |p| (i, p.clone())))
            .collect();
        Records {
            target,
            chain,
            parts,
            lines: None,
            cut,
            kept_revision: 0,
            kept_time: Timestamp(0),
            journal_done: false,
            progress: Progress::default(),
            report,
            failed: false,
        }
    }

    /// Reads the next part: checksum, open, decompress.
    fn next_part(&mut self) -> Result<bool> {
        let Some((i, part)) = self.parts.pop_front() else {
            return Ok(false);
        };
        let opened = &self.chain[i];
        let id = &opened.manifest.id;
        let place = format!("backup {id}: {}", part.name);
        let sealed = self
            .target
            .get(&format!("{id}/{}", part.name))?
            .ok_or_else(|| integrity(format!("{place} is missing")))?;
        if sealed.len() as u64 != part.stored_bytes || sha256(&sealed) != part.sha256 {
            return Err(integrity(format!(
                "{place}: checksum mismatch ({} bytes, the manifest says {}): the file was altered or truncated",
                sealed.len(),
                part.stored_bytes
            )));
        }
        let compressed = opened
            .key
            .open(&place, &part_aad(id, &part.name), &sealed)?;
        // Sealed by us, so its size is the manifest's; bound it anyway.
        let mut plain =
            Vec::with_capacity(usize::try_from(part.plain_bytes).unwrap_or(0).min(64 << 20));
        zstd::stream::copy_decode(&compressed[..], &mut plain)
            .map_err(|e| integrity(format!("{place}: does not decompress ({e})")))?;
        if plain.len() as u64 != part.plain_bytes {
            return Err(integrity(format!(
                "{place}: {} bytes after decompression, the manifest says {}",
                plain.len(),
                part.plain_bytes
            )));
        }
        self.progress.parts += 1;
        self.progress.stored_bytes += sealed.len() as u64;
        self.progress.plain_bytes += plain.len() as u64;
        (self.report)(self.progress);
        self.lines = Some((i, part.name, std::io::Cursor::new(plain).lines(), 0));
        Ok(true)
    }

    /// The next record of the chain, before the cut.
    fn next_record(&mut self) -> Result<Option<DumpRecord>> {
        loop {
            let Some((i, name, lines, n)) = &mut self.lines else {
                if self.next_part()? {
                    continue;
                }
                self.check_reached()?;
                return Ok(None);
            };
            let Some(line) = lines.next() else {
                // Every record the manifest counts, no more, no fewer.
                let want = self.chain[*i]
                    .manifest
                    .parts
                    .iter()
                    .find(|p| p.name == *name)
                    .map_or(0, |p| p.records);
                if *n != want {
                    let id = &self.chain[*i].manifest.id;
                    return Err(integrity(format!(
                        "backup {id}: {name} holds {n} records, the manifest says {want}"
                    )));
                }
                self.lines = None;
                continue;
            };
            *n += 1;
            let id = &self.chain[*i].manifest.id;
            let line = line.map_err(|e| integrity(format!("backup {id}: {name} line {n}: {e}")))?;
            let record: DumpRecord = serde_json::from_str(&line)
                .map_err(|e| integrity(format!("backup {id}: {name} line {n}: {e}")))?;
            let last = *i + 1 == self.chain.len();
            self.progress.records += 1;
            if let Some(r) = self.keep(record, last)? {
                return Ok(Some(r));
            }
        }
    }

    /// At the end: a time before every revision the backups hold is
    /// refused (the load then writes nothing).
    fn check_reached(&self) -> Result<()> {
        let end = self.chain.last().map(|o| &o.manifest);
        if let Cut::Time(t) = self.cut
            && self.kept_revision == 0
            && end.is_some_and(|m| m.revision > 0)
        {
            return Err(Error::invalid(
                "time",
                format!(
                    "{t} is before the oldest revision the backups hold ({}); nothing was restored",
                    end.map_or(1, |m| m.oldest_revision.max(1))
                ),
            ));
        }
        Ok(())
    }

    fn before_cut(&self, revision: u64) -> bool {
        match self.cut {
            Cut::All => true,
            Cut::Revision(r) => revision <= r,
            // Revisions come first in each backup: by the time versions
            // are read, the newest revision before the time is known.
            Cut::Time(_) => revision <= self.kept_revision,
        }
    }

    fn keep(&mut self, record: DumpRecord, last: bool) -> Result<Option<DumpRecord>> {
        match &record {
            DumpRecord::Revision(info) => {
                let keep = match self.cut {
                    Cut::All => true,
                    Cut::Revision(r) => info.revision <= r,
                    Cut::Time(t) => info.time <= t,
                };
                if !keep {
                    return Ok(None);
                }
                self.kept_revision = info.revision;
                self.kept_time = info.time;
            }
            DumpRecord::Namespace { revision, .. } | DumpRecord::Layer { revision, .. } => {
                if !self.before_cut(*revision) {
                    return Ok(None);
                }
            }
            DumpRecord::Journal(j) => {
                // The journal is cut as a prefix, so its chain still verifies.
                if self.journal_done || j.revision.is_some_and(|r| !self.before_cut(r)) {
                    self.journal_done = true;
                    return Ok(None);
                }
            }
            // Settings are not versioned: the last backup's.
            DumpRecord::Setting { .. } => {
                if !last {
                    return Ok(None);
                }
            }
        }
        Ok(Some(record))
    }
}

impl Iterator for Records<'_> {
    type Item = Result<DumpRecord>;
    fn next(&mut self) -> Option<Result<DumpRecord>> {
        if self.failed {
            return None;
        }
        match self.next_record() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The state to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    /// The newest backup's.
    Latest,
    /// A given backup's.
    Backup(String),
    /// Right after a revision.
    Revision(u64),
    /// The last commit at or before a time.
    Time(Timestamp),
}

/// How to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// The state to restore.
    pub point: Point,
    /// The store whose backups to use, when the target holds several.
    pub store_id: Option<String>,
    /// How far past the newest revision of the store's backups the
    /// restored store resumes, so that no revision a client of the old
    /// store saw is handed out again with other content.
    pub bump: u64,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            point: Point::Latest,
            store_id: None,
            bump: 1_000_000,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    /// The backups read, full first.
    pub chain: Vec<String>,
    /// The revision restored (the last commit kept).
    pub revision: u64,
    /// When it was committed.
    pub revision_time: Timestamp,
    /// The revision the restored store resumed at (its first new commit
    /// gets the next one).
    pub resumed_at: u64,
    /// The restored store's new identity.
    pub store_id: String,
    /// The identity of the store the backups were taken of.
    pub from_store_id: String,
    /// Records read.
    pub records: u64,
    /// Something the operator should know (commits after the newest backup).
    pub note: Option<String>,
    /// The facts the last backup read records (see [`Manifest::facts`]).
    pub facts: std::collections::BTreeMap<String, String>,
}

/// Picks the backup a restore ends at.
fn pick(target: &dyn Target, options: &RestoreOptions) -> Result<(Manifest, u64, Option<String>)> {
    let listed = list(target)?;
    // A manifest that is there but damaged could be the backup wanted:
    // never fall back to an older one silently.
    let damaged: Vec<String> = listed
        .iter()
        .filter(|l| {
            l.manifest.is_none()
                && !l
                    .problem
                    .as_deref()
                    .is_some_and(|p| p.starts_with(INCOMPLETE))
        })
        .map(|l| {
            format!(
                "{} ({})",
                l.id,
                l.problem.as_deref().unwrap_or("unreadable")
            )
        })
        .collect();
    if !damaged.is_empty() && !matches!(options.point, Point::Backup(_)) {
        return Err(integrity(format!(
            "{} holds damaged backups: {}; name the backup to restore with --backup to use another one",
            target.url(),
            damaged.join("; ")
        )));
    }
    let all: Vec<Manifest> = listed.into_iter().filter_map(|l| l.manifest).collect();
    let mut stores: Vec<&str> = all.iter().map(|m| m.store_id.as_str()).collect();
    stores.sort_unstable();
    stores.dedup();
    let store = match (&options.store_id, &options.point, stores.as_slice()) {
        (Some(s), _, _) => s.clone(),
        (None, Point::Backup(id), _) => all
            .iter()
            .find(|m| &m.id == id)
            .map(|m| m.store_id.clone())
            .ok_or_else(|| {
                Error::invalid(
                    "backup",
                    format!("no complete backup {id} on {}", target.url()),
                )
            })?,
        (None, _, [one]) => (*one).to_owned(),
        (None, _, []) => {
            return Err(Error::invalid(
                "backup",
                format!("no complete backup on {}", target.url()),
            ));
        }
        (None, _, many) => {
            return Err(Error::invalid(
                "backup",
                format!(
                    "{} holds backups of {} stores ({}): name one with --store",
                    target.url(),
                    many.len(),
                    many.join(", ")
                ),
            ));
        }
    };
    let mut mine: Vec<Manifest> = all.into_iter().filter(|m| m.store_id == store).collect();
    mine.sort_by_key(|m| (m.revision, m.created));
    let newest = mine.last().cloned().ok_or_else(|| {
        Error::invalid(
            "backup",
            format!("no complete backup of store {store} on {}", target.url()),
        )
    })?;
    let top = newest.revision;
    let chosen = match &options.point {
        Point::Latest => (newest, None),
        Point::Backup(id) => (
            mine.iter().find(|m| &m.id == id).cloned().ok_or_else(|| {
                Error::invalid("backup", format!("no complete backup {id} of store {store}"))
            })?,
            None,
        ),
        Point::Revision(r) => (
            mine.iter().find(|m| m.revision >= *r).cloned().ok_or_else(|| {
                Error::invalid(
                    "revision",
                    format!(
                        "revision {r} is after the newest backup of store {store} (revision {top}); commits after it are in no backup"
                    ),
                )
            })?,
            None,
        ),
        Point::Time(t) => match mine.iter().find(|m| m.revision_time >= *t) {
            Some(m) => (m.clone(), None),
            None => {
                let note = format!(
                    "the newest backup holds the commits up to revision {top} ({}); any commit after it and before {t} is in no backup",
                    newest.revision_time
                );
                (newest, Some(note))
            }
        },
    };
    Ok((chosen.0, top, chosen.1))
}

/// Restores a store from the backups on `target` into `into`, which must
/// be empty, in one transaction: as of the point `options` names, with
/// every revision, time, author and journal record as they were, settings
/// as of the backup the restore ends at, and a new identity. The restored
/// store then resumes `options.bump` revisions past the newest backup.
pub fn restore(
    target: &dyn Target,
    keys: &dyn Keys,
    into: &dyn Store,
    options: &RestoreOptions,
    report: &mut dyn FnMut(Progress),
) -> Result<RestoreReport> {
    let (end, top, note) = pick(target, options)?;
    let opened = chain(target, keys, &end.id)?;
    let cut = match options.point {
        Point::Revision(r) => Cut::Revision(r),
        Point::Time(t) => Cut::Time(t),
        Point::Latest | Point::Backup(_) => Cut::All,
    };
    if let Point::Revision(r) = options.point
        && r < end.oldest_revision
    {
        return Err(Error::Compacted {
            requested: r,
            oldest: end.oldest_revision,
        });
    }
    let store_id = new_store_id();
    let mut records = Records::new(target, &opened, cut, report);
    // The resume revision goes after everything the store can have handed
    // out (the store checks that it follows the last revision loaded).
    let resumed_at = top.saturating_add(options.bump.max(1));
    let load_end = LoadEnd {
        store_id: store_id.clone(),
        oldest_revision: end.oldest_revision,
        resume: Some(RevisionInfo {
            revision: resumed_at,
            time: Timestamp::now().max(end.revision_time),
            author: RESTORE_AUTHOR.to_owned(),
            message: format!(
                "restored from backup {} of store {} (revisions after the restored one up to {} are not reused)",
                end.id,
                end.store_id,
                resumed_at - 1
            ),
        }),
    };
    into.load(&mut records, &load_end)?;
    Ok(RestoreReport {
        chain: opened.iter().map(|o| o.manifest.id.clone()).collect(),
        revision: records.kept_revision,
        revision_time: records.kept_time,
        resumed_at,
        store_id,
        from_store_id: end.store_id.clone(),
        records: records.progress.records,
        note,
        facts: end.facts.clone(),
    })
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// The backups read, full first.
    pub chain: Vec<String>,
    /// The revision the backup holds.
    pub revision: u64,
    /// Parts checked.
    pub parts: usize,
    /// Records read.
    pub records: u64,
    /// Bytes read.
    pub stored_bytes: u64,
}

/// Verifies backup `id` end to end: every manifest's seal, the chain's
/// links, every part's checksum, decryption and decompression, every
/// record, and a trial restore into a memory store whose revision and
/// journal head must be the manifest's. Returns that store, for checks
/// that need more than this crate (the audit chain, resolving contexts).
pub fn verify(
    target: &dyn Target,
    keys: &dyn Keys,
    id: &str,
    report: &mut dyn FnMut(Progress),
) -> Result<(VerifyReport, MemoryStore)> {
    let opened = chain(target, keys, id)?;
    let end = opened
        .last()
        .map(|o| o.manifest.clone())
        .ok_or_else(|| integrity(format!("backup {id}: an empty chain")))?;
    let store = MemoryStore::new();
    let mut records = Records::new(target, &opened, Cut::All, report);
    store.load(
        &mut records,
        &LoadEnd {
            store_id: end.store_id.clone(),
            oldest_revision: end.oldest_revision,
            resume: None,
        },
    )?;
    let progress = records.progress;
    if store.revision()? != end.revision {
        return Err(integrity(format!(
            "backup {id}: it restores to revision {}, the manifest says {}",
            store.revision()?,
            end.revision
        )));
    }
    let head = store.journal(
        end.journal.as_ref().map_or(0, |j| j.seq.saturating_sub(1)),
        1,
    )?;
    let head_ok = match &end.journal {
        None => head.is_empty(),
        Some(mark) => head.first().is_some_and(|r| mark.is(&r.head())),
    };
    if !head_ok {
        return Err(integrity(format!(
            "backup {id}: its journal does not end at the head the manifest records"
        )));
    }
    Ok((
        VerifyReport {
            chain: opened.iter().map(|o| o.manifest.id.clone()).collect(),
            revision: end.revision,
            parts: progress.parts,
            records: progress.records,
            stored_bytes: progress.stored_bytes,
        },
        store,
    ))
}
