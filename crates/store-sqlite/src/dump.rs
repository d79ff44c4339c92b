//! Dumping the store from one read snapshot, and loading a dump into an
//! empty database in one transaction (see `confstrata_core::dump`).
//!
//! A dump holds whole documents: the deltas this store keeps on disk are
//! applied as the rows are read (one pass over each layer's rows, in
//! revision order), and a load stores the versions again as deltas or
//! whole by the same rules as a commit.

use confstrata_core::dump::{DumpFrom, DumpHead, DumpRecord, LoadEnd, check_ascending};
use confstrata_core::{
    Document, Error, JournalRecord, LayerPath, NamespaceName, Result, RevisionInfo, SettingWrite,
    Timestamp,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::db::{self, db, to_sql};

/// Journal records read per query while dumping.
const JOURNAL_PAGE: usize = 4096;

/// The store's identity.
pub(crate) fn store_id(conn: &Connection) -> Result<String> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = 'store_id'")
        .map_err(db)?
        .query_row([], |r| r.get::<_, String>(0))
        .optional()
        .map_err(db)?
        .ok_or_else(|| db::corrupt("no store identity"))
}

/// Writes everything after `from` to `sink`; `conn` is inside a read
/// transaction, which is the snapshot.
pub(crate) fn dump(
    conn: &Connection,
    from: DumpFrom,
    sink: &mut dyn FnMut(DumpRecord) -> Result<()>,
) -> Result<DumpHead> {
    let after = to_sql(from.revision)?;
    let (revision, time) = db::last_revision(conn)?.unwrap_or((0, Timestamp(0)));
    let head = DumpHead {
        store_id: store_id(conn)?,
        revision,
        time,
        oldest_revision: db::oldest_revision(conn)?,
        journal: db::journal_head(conn)?,
    };
    {
        let mut stmt = conn
            .prepare(
                "SELECT rev, time_ms, author, message FROM revisions WHERE rev > ?1 ORDER BY rev",
            )
            .map_err(db)?;
        let mut rows = stmt.query([after]).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let info = RevisionInfo {
                revision: db::rev_from_sql(r.get(0).map_err(db)?)?,
                time: Timestamp(r.get(1).map_err(db)?),
                author: r.get(2).map_err(db)?,
                message: r.get(3).map_err(db)?,
            };
            sink(DumpRecord::Revision(info))?;
        }
    }
    {
        let mut stmt = conn
            .prepare(
                "SELECT name, rev, spec FROM namespace_versions WHERE rev > ?1 ORDER BY name, rev",
            )
            .map_err(db)?;
        let mut rows = stmt.query([after]).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let name: String = r.get(0).map_err(db)?;
            let rev: i64 = r.get(1).map_err(db)?;
            let text: Option<String> = r.get(2).map_err(db)?;
            sink(DumpRecord::Namespace {
                name: db::namespace_name(&name)?,
                revision: db::rev_from_sql(rev)?,
                spec: text
                    .map(|t| db::spec(&name, rev, &t).map(Box::new))
                    .transpose()?,
            })?;
        }
    }
    dump_layers(conn, after, sink)?;
    let mut seq = from.journal_seq;
    loop {
        let page = db::journal(conn, seq, JOURNAL_PAGE)?;
        let Some(last) = page.last() else { break };
        seq = last.seq;
        for record in page {
            sink(DumpRecord::Journal(record))?;
        }
    }
    for (key, value) in db::settings(conn, "")? {
        sink(DumpRecord::Setting { key, value })?;
    }
    Ok(head)
}

/// The layer versions after `after`, each object's in revision order,
/// with deltas applied.
fn dump_layers(
    conn: &Connection,
    after: i64,
    sink: &mut dyn FnMut(DumpRecord) -> Result<()>,
) -> Result<()> {
    let mut stmt = conn
        .prepare(
            "SELECT ns, layer, rev, doc, base, depth, chain_bytes FROM layer_versions
             WHERE rev > ?1 ORDER BY ns, layer, rev",
        )
        .map_err(db)?;
    let mut rows = stmt.query([after]).map_err(db)?;
    // The object of the row before, and its document.
    let mut previous: Option<(String, String, Option<Document>)> = None;
    while let Some(r) = rows.next().map_err(db)? {
        let ns: String = r.get(0).map_err(db)?;
        let layer: String = r.get(1).map_err(db)?;
        let row = db::VersionRow {
            rev: r.get(2).map_err(db)?,
            doc: r.get(3).map_err(db)?,
            base: r.get(4).map_err(db)?,
            depth: r.get(5).map_err(db)?,
            chain_bytes: r.get(6).map_err(db)?,
        };
        let same = matches!(&previous, Some((n, l, _)) if *n == ns && *l == layer);
        let document = match (&row.doc, row.base) {
            (None, _) => None,
            (Some(text), None) => Some(db::document(&ns, &layer, row.rev, text)?),
            // A delta applies to the version before it, which the row
            // before holds when it is of the same layer.
            (Some(text), Some(_)) => match previous.take() {
                Some((_, _, Some(mut doc))) if same => {
                    crate::delta::apply(&mut doc, text, &|| {
                        format!("layer {ns}:{layer} at revision {}", row.rev)
                    })?;
                    Some(doc)
                }
                _ => db::materialize(conn, &ns, &layer, &row)?,
            },
        };
        let namespace = db::namespace_name(&ns)?;
        let path = db::layer_path(&ns, &layer)?;
        sink(DumpRecord::Layer {
            namespace,
            layer: path,
            revision: db::rev_from_sql(row.rev)?,
            document: document.clone(),
        })?;
        previous = Some((ns, layer, document));
    }
    Ok(())
}

/// What a load leaves: the new current and oldest revisions.
pub(crate) struct Loaded {
    pub(crate) current: u64,
    pub(crate) oldest: u64,
}

/// Loads a dump into the empty database behind `conn`, in one transaction.
pub(crate) fn load(
    conn: &mut Connection,
    records: &mut dyn Iterator<Item = Result<DumpRecord>>,
    end: &LoadEnd,
) -> Result<Loaded> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let used: i64 = tx
        .query_row(
            "SELECT (SELECT count(*) FROM revisions) + (SELECT count(*) FROM namespace_versions)
                  + (SELECT count(*) FROM layer_versions) + (SELECT count(*) FROM journal)
                  + (SELECT count(*) FROM settings)",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    if used != 0 {
        return Err(Error::invalid(
            "store",
            "a dump loads only into an empty store; this one has data",
        ));
    }
    let mut current = 0;
    let mut head = None;
    let mut newest_version = 0;
    // The layer written last and its document: the next version of the
    // same layer is stored as a delta from it without reading it back.
    let mut last_layer: Option<(NamespaceName, LayerPath, u64, Option<Document>)> = None;
    for record in records {
        match record? {
            DumpRecord::Revision(info) => {
                check_ascending(Some(current).filter(|c| *c > 0), info.revision, "revision")?;
                insert_revision(&tx, &info)?;
                current = info.revision;
            }
            DumpRecord::Namespace {
                name,
                revision,
                spec,
            } => {
                let newest: Option<i64> = tx
                    .prepare_cached("SELECT max(rev) FROM namespace_versions WHERE name = ?1")
                    .map_err(db)?
                    .query_row([name.as_str()], |r| r.get(0))
                    .map_err(db)?;
                let newest = newest.map(db::rev_from_sql).transpose()?;
                check_ascending(newest, revision, &format!("namespace {name}"))?;
                let text = spec.as_deref().map(db::encode_spec).transpose()?;
                tx.prepare_cached(
                    "INSERT INTO namespace_versions (name, rev, spec) VALUES (?1, ?2, ?3)",
                )
                .map_err(db)?
                .execute(rusqlite::params![name.as_str(), to_sql(revision)?, text])
                .map_err(db)?;
                newest_version = newest_version.max(revision);
            }
            DumpRecord::Layer {
                namespace,
                layer,
                revision,
                document,
            } => {
                let known = match last_layer.take() {
                    Some((n, l, rev, doc)) if n == namespace && l == layer => {
                        check_ascending(Some(rev), revision, &format!("layer {n}:{l}"))?;
                        doc.map(|d| (d, rev))
                    }
                    _ => {
                        let newest: Option<i64> = tx
                            .prepare_cached(
                                "SELECT max(rev) FROM layer_versions WHERE ns = ?1 AND layer = ?2",
                            )
                            .map_err(db)?
                            .query_row([namespace.as_str(), layer.as_str()], |r| r.get(0))
                            .map_err(db)?;
                        let newest = newest.map(db::rev_from_sql).transpose()?;
                        check_ascending(newest, revision, &format!("layer {namespace}:{layer}"))?;
                        None
                    }
                };
                let write = db::version_write(
                    &tx,
                    &namespace,
                    &layer,
                    document.as_ref(),
                    known.as_ref().map(|(d, r)| (d, *r)),
                    None,
                )?;
                db::insert_version(&tx, to_sql(revision)?, &write)?;
                newest_version = newest_version.max(revision);
                last_layer = Some((namespace, layer, revision, document));
            }
            DumpRecord::Journal(record) => {
                confstrata_core::check_next(head, &record)?;
                if let Some(rev) = record.revision
                    && rev > current
                {
                    return Err(out_of_order(&record, current));
                }
                db::insert_journal(&tx, &record)?;
                head = Some(record.head());
            }
            DumpRecord::Setting { key, value } => {
                db::write_setting(
                    &tx,
                    &SettingWrite {
                        key,
                        value: Some(value),
                    },
                )?;
            }
        }
    }
    if newest_version > current {
        return Err(Error::storage(format!(
            "the dump holds a version at revision {newest_version} but its newest revision is {current}; nothing was loaded"
        )));
    }
    let oldest = end.oldest_revision.min(current);
    if let Some(resume) = &end.resume {
        check_ascending(Some(current), resume.revision, "revision")?;
        insert_revision(&tx, resume)?;
        current = resume.revision;
    }
    db::set_oldest_revision(&tx, oldest)?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('store_id', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [&end.store_id],
    )
    .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(Loaded { current, oldest })
}

fn insert_revision(conn: &Connection, info: &RevisionInfo) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO revisions (rev, time_ms, author, message) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(db)?
    .execute(rusqlite::params![
        to_sql(info.revision)?,
        info.time.0,
        info.author,
        info.message
    ])
    .map_err(db)?;
    Ok(())
}

fn out_of_order(record: &JournalRecord, current: u64) -> Error {
    Error::storage(format!(
        "the dump is out of order: journal record {} describes revision {} before it was loaded \
         (at revision {current}); nothing was loaded",
        record.seq,
        record.revision.unwrap_or(0)
    ))
}
