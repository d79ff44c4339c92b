//! Queries over one connection, and the conversion of rows to model types.
//!
//! Every function here runs inside whatever transaction the caller holds: a
//! read snapshot for the reader pool, the batch transaction for the writer.

use confstrata_core::{
    Change, ChangeItem, DeclarationVersion, Document, Error, JournalHead, JournalRecord, LayerPath,
    LayerRecord, LayerVersion, NamespaceName, NamespaceRecord, NamespaceSpec, Result, RevisionInfo,
    SettingWrite, StateReader, Timestamp,
};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row};

use crate::latest::{LatestLayers, Pending, Version};

/// Maps a SQLite failure to [`Error::Storage`].
pub(crate) fn db(err: rusqlite::Error) -> Error {
    Error::storage(format!("SQLite: {err}"))
}

/// A revision as SQLite stores it.
pub(crate) fn to_sql(rev: u64) -> Result<i64> {
    i64::try_from(rev)
        .map_err(|_| Error::storage(format!("revision {rev} is too large for the store")))
}

/// A limit as SQLite takes it (`usize::MAX` means no limit).
fn limit_to_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(crate) fn rev_from_sql(rev: i64) -> Result<u64> {
    u64::try_from(rev).map_err(|_| corrupt(format!("a negative revision number ({rev})")))
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::storage(format!(
        "the database holds {what}; it may be corrupt: check it with `sqlite3 FILE 'PRAGMA integrity_check'` \
         or restore a backup"
    ))
}

pub(crate) fn namespace_name(text: &str) -> Result<NamespaceName> {
    NamespaceName::parse(text).map_err(|e| corrupt(format!("an invalid namespace name ({e})")))
}

pub(crate) fn layer_path(ns: &str, text: &str) -> Result<LayerPath> {
    LayerPath::parse(text)
        .map_err(|e| corrupt(format!("an invalid layer path in namespace {ns} ({e})")))
}

pub(crate) fn document(ns: &str, layer: &str, rev: i64, text: &str) -> Result<Document> {
    serde_json::from_str(text).map_err(|e| {
        corrupt(format!(
            "a document for layer {ns}:{layer} at revision {rev} that does not parse ({e})"
        ))
    })
}

pub(crate) fn spec(name: &str, rev: i64, text: &str) -> Result<NamespaceSpec> {
    let spec: NamespaceSpec = serde_json::from_str(text).map_err(|e| {
        corrupt(format!(
            "a spec for namespace {name} at revision {rev} that does not parse ({e})"
        ))
    })?;
    if spec.name.as_str() != name {
        return Err(corrupt(format!(
            "a spec named {} stored under namespace {name} at revision {rev}",
            spec.name
        )));
    }
    Ok(spec)
}

/// Encodes a document for storage.
pub(crate) fn encode_document(doc: &Document) -> Result<String> {
    serde_json::to_string(doc).map_err(Error::storage)
}

/// Encodes a namespace spec for storage.
pub(crate) fn encode_spec(spec: &NamespaceSpec) -> Result<String> {
    serde_json::to_string(spec).map_err(Error::storage)
}

/// Reads the columns of a query as raw SQLite values, so that decoding errors
/// become model errors that name the object rather than SQLite type errors.
fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    let out = stmt
        .query_map(params, map)
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<T>>>()
        .map_err(db)?;
    Ok(out)
}

/// The size of the database file (pages in use and free).
pub(crate) fn storage_size(conn: &Connection) -> Result<confstrata_core::StorageSize> {
    let pragma = |name: &str| -> Result<u64> {
        let v: i64 = conn
            .pragma_query_value(None, name, |r| r.get(0))
            .map_err(db)?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    let page = pragma("page_size")?;
    Ok(confstrata_core::StorageSize {
        bytes: pragma("page_count")?.saturating_mul(page),
        free_bytes: pragma("freelist_count")?.saturating_mul(page),
    })
}

/// Gives every free page back to the file system. SQLite frees one page
/// per step of the pragma, so it is stepped to the end.
pub(crate) fn incremental_vacuum(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// The newest revision and its time, if any revision exists.
pub(crate) fn last_revision(conn: &Connection) -> Result<Option<(u64, Timestamp)>> {
    let row: Option<(i64, i64)> = conn
        .prepare_cached("SELECT rev, time_ms FROM revisions ORDER BY rev DESC LIMIT 1")
        .map_err(db)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(db)?;
    row.map(|(rev, time)| Ok((rev_from_sql(rev)?, Timestamp(time))))
        .transpose()
}

/// The newest revision, 0 for an empty store.
pub(crate) fn current_revision(conn: &Connection) -> Result<u64> {
    Ok(last_revision(conn)?.map_or(0, |(rev, _)| rev))
}

/// The oldest readable revision, as retention last recorded it.
pub(crate) fn oldest_revision(conn: &Connection) -> Result<u64> {
    let value: Option<i64> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'oldest_revision'")
        .map_err(db)?
        .query_row([], |r| r.get(0))
        .optional()
        .map_err(db)?;
    match value {
        Some(v) => {
            u64::try_from(v).map_err(|_| corrupt(format!("a negative oldest_revision ({v})")))
        }
        None => Err(corrupt("no oldest_revision entry in its meta table")),
    }
}

/// Records the oldest readable revision.
pub(crate) fn set_oldest_revision(conn: &Connection, oldest: u64) -> Result<()> {
    conn.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'oldest_revision'")
        .map_err(db)?
        .execute([to_sql(oldest)?])
        .map_err(db)?;
    Ok(())
}

/// The newest revision committed at or before `time`, 0 if none.
pub(crate) fn revision_for_time(conn: &Connection, time: Timestamp) -> Result<u64> {
    let rev: Option<i64> = conn
        .prepare_cached(
            "SELECT rev FROM revisions WHERE time_ms <= ?1 ORDER BY time_ms DESC, rev DESC LIMIT 1",
        )
        .map_err(db)?
        .query_row([time.0], |r| r.get(0))
        .optional()
        .map_err(db)?;
    rev.map_or(Ok(0), rev_from_sql)
}

type InfoRow = (i64, i64, String, String);

fn info_row(r: &Row<'_>) -> rusqlite::Result<InfoRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn info((rev, time, author, message): InfoRow) -> Result<RevisionInfo> {
    Ok(RevisionInfo {
        revision: rev_from_sql(rev)?,
        time: Timestamp(time),
        author,
        message,
    })
}

/// Who committed a revision, when and why.
pub(crate) fn revision_info(conn: &Connection, revision: u64) -> Result<Option<RevisionInfo>> {
    // No stored revision is that large.
    let Ok(revision) = i64::try_from(revision) else {
        return Ok(None);
    };
    let row = conn
        .prepare_cached("SELECT rev, time_ms, author, message FROM revisions WHERE rev = ?1")
        .map_err(db)?
        .query_row([revision], info_row)
        .optional()
        .map_err(db)?;
    row.map(info).transpose()
}

/// One namespace's declaration at a revision and the revision that wrote it.
pub(crate) fn namespace_at(
    conn: &Connection,
    name: &NamespaceName,
    revision: u64,
) -> Result<Option<(NamespaceSpec, u64)>> {
    let row: Option<(i64, Option<String>)> = conn
        .prepare_cached("SELECT rev, spec FROM namespace_versions WHERE name = ?1 AND rev <= ?2 ORDER BY rev DESC LIMIT 1")
        .map_err(db)?
        .query_row(rusqlite::params![name.as_str(), to_sql(revision)?], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(db)?;
    match row {
        Some((rev, Some(text))) => Ok(Some((spec(name.as_str(), rev, &text)?, rev_from_sql(rev)?))),
        _ => Ok(None),
    }
}

/// Every namespace at a revision, by name.
pub(crate) fn namespaces_at(conn: &Connection, revision: u64) -> Result<Vec<NamespaceRecord>> {
    // SQLite takes the bare columns of a `max()` aggregate from the row holding the maximum.
    let found: Vec<(String, i64, Option<String>)> = rows(
        conn,
        "SELECT name, max(rev), spec FROM namespace_versions WHERE rev <= ?1 GROUP BY name ORDER BY name",
        [to_sql(revision)?],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut out = Vec::with_capacity(found.len());
    for (name, rev, text) in found {
        if let Some(text) = text {
            out.push(NamespaceRecord {
                spec: spec(&name, rev, &text)?,
                revision: rev_from_sql(rev)?,
            });
        }
    }
    Ok(out)
}

/// The newest stored version of a layer at or before a revision: its row.
#[derive(Debug, Clone)]
pub(crate) struct VersionRow {
    pub(crate) rev: i64,
    /// The document, a delta (when `base` is set), or `None`: deleted.
    pub(crate) doc: Option<String>,
    /// The revision of the whole version a delta's chain starts from.
    pub(crate) base: Option<i64>,
    pub(crate) depth: i64,
    pub(crate) chain_bytes: i64,
}

const VERSION_COLUMNS: &str = "rev, doc, base, depth, chain_bytes";

fn version_row(r: &Row<'_>) -> rusqlite::Result<VersionRow> {
    Ok(VersionRow {
        rev: r.get(0)?,
        doc: r.get(1)?,
        base: r.get(2)?,
        depth: r.get(3)?,
        chain_bytes: r.get(4)?,
    })
}

/// The row of a layer's newest version at or before `revision`.
pub(crate) fn version_row_at(
    conn: &Connection,
    ns: &NamespaceName,
    layer: &LayerPath,
    revision: u64,
) -> Result<Option<VersionRow>> {
    conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM layer_versions WHERE ns = ?1 AND layer = ?2 AND rev <= ?3 ORDER BY rev DESC LIMIT 1"
    ))
    .map_err(db)?
    .query_row(
        rusqlite::params![ns.as_str(), layer.as_str(), to_sql(revision)?],
        version_row,
    )
    .optional()
    .map_err(db)
}

/// What the next version of a layer needs to know of its newest one to
/// choose between a delta and a whole version: everything but the
/// document itself (a whole version of a large layer is tens of KB to
/// read for nothing when the planner's copy is at hand).
struct VersionMeta {
    rev: i64,
    deleted: bool,
    base: Option<i64>,
    depth: i64,
    chain_bytes: i64,
    /// The chain's whole version's size (a whole row from before schema
    /// 3, which does not record it: its document's length).
    base_bytes: Option<i64>,
}

/// The newest version's [`VersionMeta`].
fn newest_version_meta(
    conn: &Connection,
    ns: &NamespaceName,
    layer: &LayerPath,
) -> Result<Option<VersionMeta>> {
    conn.prepare_cached(
        "SELECT rev, doc IS NULL, base, depth, chain_bytes,
                coalesce(base_bytes, CASE WHEN base IS NULL THEN length(CAST(doc AS BLOB)) END)
         FROM layer_versions WHERE ns = ?1 AND layer = ?2 ORDER BY rev DESC LIMIT 1",
    )
    .map_err(db)?
    .query_row(rusqlite::params![ns.as_str(), layer.as_str()], |r| {
        Ok(VersionMeta {
            rev: r.get(0)?,
            deleted: r.get(1)?,
            base: r.get(2)?,
            depth: r.get(3)?,
            chain_bytes: r.get(4)?,
            base_bytes: r.get(5)?,
        })
    })
    .optional()
    .map_err(db)
}

/// The document of a stored version: parsed if whole, rebuilt from its
/// chain (the whole version and every delta after it) if a delta; `None`
/// if the version is a deletion.
pub(crate) fn materialize(
    conn: &Connection,
    ns: &str,
    layer: &str,
    row: &VersionRow,
) -> Result<Option<Document>> {
    let Some(text) = &row.doc else {
        return Ok(None);
    };
    let Some(base) = row.base else {
        return document(ns, layer, row.rev, text).map(Some);
    };
    // The chain: its whole version, then every delta up to this one.
    let chain: Vec<(i64, Option<String>, Option<i64>)> = rows(
        conn,
        "SELECT rev, doc, base FROM layer_versions WHERE ns = ?1 AND layer = ?2 AND rev >= ?3 AND rev <= ?4 ORDER BY rev",
        rusqlite::params![ns, layer, base, row.rev],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut chain = chain.into_iter();
    let mut doc = match chain.next() {
        Some((rev, Some(text), None)) if rev == base => document(ns, layer, rev, &text)?,
        _ => {
            return Err(corrupt(format!(
                "a delta for layer {ns}:{layer} at revision {} whose whole version (revision {base}) is missing",
                row.rev
            )));
        }
    };
    for (rev, text, b) in chain {
        let Some(text) = text.filter(|_| b == Some(base)) else {
            return Err(corrupt(format!(
                "a broken delta chain for layer {ns}:{layer} at revision {rev}"
            )));
        };
        crate::delta::apply(&mut doc, &text, &|| {
            format!("layer {ns}:{layer} at revision {rev}")
        })?;
    }
    Ok(Some(doc))
}

/// A layer version ready to insert: whole or a delta, with its chain's
/// counters (see [`VersionRow`]).
#[derive(Debug)]
pub(crate) struct VersionWrite {
    pub(crate) ns: String,
    pub(crate) layer: String,
    pub(crate) doc: Option<String>,
    pub(crate) base: Option<i64>,
    pub(crate) depth: i64,
    pub(crate) chain_bytes: i64,
    pub(crate) base_bytes: Option<i64>,
}

/// How to store `new` as the next version of a layer whose newest version
/// is `prev`: as a delta from it when the layer is big enough for that to
/// pay and the chain stays within its bounds (`delta.rs`), else whole.
pub(crate) fn version_write(
    conn: &Connection,
    ns: &NamespaceName,
    layer: &LayerPath,
    new: Option<&Document>,
    known: Option<(&Document, u64)>,
    touched: Option<&[confstrata_core::KeyPath]>,
) -> Result<VersionWrite> {
    let mut out = VersionWrite {
        ns: ns.to_string(),
        layer: layer.to_string(),
        doc: None,
        base: None,
        depth: 0,
        chain_bytes: 0,
        base_bytes: None,
    };
    let Some(new) = new else {
        return Ok(out);
    };
    let whole = |mut out: VersionWrite| -> Result<VersionWrite> {
        let text = encode_document(new)?;
        out.base_bytes = Some(i64::try_from(text.len()).unwrap_or(i64::MAX));
        out.doc = Some(text);
        Ok(out)
    };
    let prev = match newest_version_meta(conn, ns, layer)? {
        Some(meta) if !meta.deleted => meta,
        _ => return whole(out),
    };
    let (base, depth, chain_bytes, base_bytes) = match prev.base {
        None => (prev.rev, 0, 0, prev.base_bytes.unwrap_or(0)),
        Some(base) => (
            base,
            prev.depth,
            prev.chain_bytes,
            prev.base_bytes.unwrap_or(0),
        ),
    };
    if base_bytes < crate::delta::MIN_DELTA_BASE || depth >= crate::delta::MAX_DEPTH {
        return whole(out);
    }
    // The version the planner read, when it is this one; else read it.
    let read;
    let old = match known {
        Some((doc, rev)) if i64::try_from(rev).ok() == Some(prev.rev) => doc,
        _ => match version_row_at(conn, ns, layer, LATEST)?
            .filter(|row| row.rev == prev.rev)
            .map(|row| materialize(conn, ns.as_str(), layer.as_str(), &row))
            .transpose()?
            .flatten()
        {
            Some(doc) => {
                read = doc;
                &read
            }
            None => return whole(out),
        },
    };
    let text = crate::delta::delta_within(old, new, touched)?.unwrap_or_else(|| "[]".to_owned());
    let chain_bytes = chain_bytes.saturating_add(i64::try_from(text.len()).unwrap_or(i64::MAX));
    if chain_bytes > base_bytes {
        return whole(out);
    }
    out.doc = Some(text);
    out.base = Some(base);
    out.depth = depth + 1;
    out.chain_bytes = chain_bytes;
    out.base_bytes = Some(base_bytes);
    Ok(out)
}

/// Stores whole every layer version that is the newest at or before
/// `floor` and is a delta, and makes the deltas after it in its chain
/// start from it: after this, no version at or after the floor is read
/// through a version before it.
pub(crate) fn rebase_versions_at(conn: &Connection, floor: i64) -> Result<()> {
    let found: Vec<(String, String, VersionRow)> = rows(
        conn,
        "SELECT ns, layer, max(rev), doc, base, depth, chain_bytes FROM layer_versions
         WHERE rev <= ?1 GROUP BY ns, layer",
        [floor],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                VersionRow {
                    rev: r.get(2)?,
                    doc: r.get(3)?,
                    base: r.get(4)?,
                    depth: r.get(5)?,
                    chain_bytes: r.get(6)?,
                },
            ))
        },
    )?;
    for (ns, layer, row) in found {
        let Some(old_base) = row.base else { continue };
        let Some(doc) = materialize(conn, &ns, &layer, &row)? else {
            continue;
        };
        let text = encode_document(&doc)?;
        let bytes = i64::try_from(text.len()).unwrap_or(i64::MAX);
        conn.prepare_cached(
            "UPDATE layer_versions SET doc = ?4, base = NULL, depth = 0, chain_bytes = 0, base_bytes = ?5
             WHERE ns = ?1 AND layer = ?2 AND rev = ?3",
        )
        .map_err(db)?
        .execute(rusqlite::params![ns, layer, row.rev, text, bytes])
        .map_err(db)?;
        conn.prepare_cached(
            "UPDATE layer_versions SET base = ?3, depth = depth - ?5, chain_bytes = chain_bytes - ?6, base_bytes = ?7
             WHERE ns = ?1 AND layer = ?2 AND rev > ?3 AND base = ?4",
        )
        .map_err(db)?
        .execute(rusqlite::params![
            ns,
            layer,
            row.rev,
            old_base,
            row.depth,
            row.chain_bytes,
            bytes
        ])
        .map_err(db)?;
    }
    Ok(())
}

/// Inserts a layer version at `rev`.
pub(crate) fn insert_version(conn: &Connection, rev: i64, v: &VersionWrite) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO layer_versions (ns, layer, rev, doc, base, depth, chain_bytes, base_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .map_err(db)?
    .execute(rusqlite::params![
        v.ns,
        v.layer,
        rev,
        v.doc,
        v.base,
        v.depth,
        v.chain_bytes,
        v.base_bytes
    ])
    .map_err(db)?;
    Ok(())
}

/// One layer's document at a revision and the revision that wrote it.
pub(crate) fn layer_at(
    conn: &Connection,
    ns: &NamespaceName,
    layer: &LayerPath,
    revision: u64,
) -> Result<Option<(Document, u64)>> {
    let Some(row) = version_row_at(conn, ns, layer, revision)? else {
        return Ok(None);
    };
    match materialize(conn, ns.as_str(), layer.as_str(), &row)? {
        Some(doc) => Ok(Some((doc, rev_from_sql(row.rev)?))),
        None => Ok(None),
    }
}

/// The top-level section `section` of a layer at a revision (a document
/// with that key alone, or empty), and the revision that last changed the
/// layer. SQLite cuts the section out of the stored JSON (`->`), so only
/// the section reaches Rust and is parsed. A key SQLite's JSON paths cannot
/// name exactly (a quote, a backslash or a control character in it) is
/// read the long way: the whole layer, then the section.
pub(crate) fn layer_section_at(
    conn: &Connection,
    ns: &NamespaceName,
    layer: &LayerPath,
    revision: u64,
    section: &str,
) -> Result<Option<(Document, u64)>> {
    if section
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Ok(layer_at(conn, ns, layer, revision)?.map(|(mut doc, rev)| {
            doc.retain(|k, _| k == section);
            (doc, rev)
        }));
    }
    let path = format!("$.\"{section}\"");
    // Only a whole version can be cut by SQLite: for a delta, `doc -> ?4`
    // is not evaluated (CASE), and the version is rebuilt instead.
    let row: Option<(i64, bool, bool, Option<String>)> = conn
        .prepare_cached(
            "SELECT rev, doc IS NULL, base IS NOT NULL, CASE WHEN base IS NULL THEN doc -> ?4 END
             FROM layer_versions WHERE ns = ?1 AND layer = ?2 AND rev <= ?3 ORDER BY rev DESC LIMIT 1",
        )
        .map_err(db)?
        .query_row(
            rusqlite::params![ns.as_str(), layer.as_str(), to_sql(revision)?, path],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(db)?;
    let (rev, text) = match row {
        None | Some((_, true, _, _)) => return Ok(None),
        Some((_, false, true, _)) => {
            return Ok(layer_at(conn, ns, layer, revision)?.map(|(mut doc, rev)| {
                doc.retain(|k, _| k == section);
                (doc, rev)
            }));
        }
        Some((rev, false, false, text)) => (rev, text),
    };
    let mut doc = Document::new();
    if let Some(text) = text {
        let value = serde_json::from_str(&text).map_err(|e| {
            corrupt(format!(
                "layer {ns}:{layer} at revision {rev}: section {section} is not valid JSON: {e}"
            ))
        })?;
        doc.insert(section.to_owned(), value);
    }
    Ok(Some((doc, rev_from_sql(rev)?)))
}

/// Every layer of a namespace at a revision, by path.
pub(crate) fn layers_at(
    conn: &Connection,
    ns: &NamespaceName,
    revision: u64,
) -> Result<Vec<LayerRecord>> {
    // SQLite takes the bare columns of a `max()` aggregate from the row holding the maximum.
    let found: Vec<(String, VersionRow)> = rows(
        conn,
        "SELECT layer, max(rev), doc, base, depth, chain_bytes FROM layer_versions
         WHERE ns = ?1 AND rev <= ?2 GROUP BY layer ORDER BY layer",
        rusqlite::params![ns.as_str(), to_sql(revision)?],
        |r| {
            Ok((
                r.get(0)?,
                VersionRow {
                    rev: r.get(1)?,
                    doc: r.get(2)?,
                    base: r.get(3)?,
                    depth: r.get(4)?,
                    chain_bytes: r.get(5)?,
                },
            ))
        },
    )?;
    let mut out = Vec::with_capacity(found.len());
    for (layer, row) in found {
        if let Some(document) = materialize(conn, ns.as_str(), &layer, &row)? {
            out.push(LayerRecord::new(
                ns.clone(),
                layer_path(ns.as_str(), &layer)?,
                document,
                rev_from_sql(row.rev)?,
            ));
        }
    }
    Ok(out)
}

/// Versions of one layer or of every layer of a namespace, newest first; only
/// versions whose revision is still recorded, like the memory store.
pub(crate) fn declaration_history(
    conn: &Connection,
    ns: &NamespaceName,
    limit: usize,
) -> Result<Vec<DeclarationVersion>> {
    type Row = (InfoRow, Option<String>);
    let found: Vec<Row> = rows(
        conn,
        "SELECT v.rev, r.time_ms, r.author, r.message, v.spec
         FROM namespace_versions v JOIN revisions r ON r.rev = v.rev
         WHERE v.name = ?1
         ORDER BY v.rev DESC LIMIT ?2",
        rusqlite::params![ns.as_str(), limit_to_sql(limit)],
        |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?), r.get(4)?)),
    )?;
    let mut out = Vec::with_capacity(found.len());
    for (info_row, text) in found {
        let rev = info_row.0;
        out.push(DeclarationVersion {
            info: info(info_row)?,
            spec: text.map(|t| spec(ns.as_str(), rev, &t)).transpose()?,
        });
    }
    Ok(out)
}

pub(crate) fn history(
    conn: &Connection,
    ns: &NamespaceName,
    layer: Option<&LayerPath>,
    limit: usize,
) -> Result<Vec<LayerVersion>> {
    type Row = (InfoRow, String, Option<String>, Option<i64>);
    let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
        Ok((
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    };
    let found: Vec<Row> = match layer {
        Some(layer) => rows(
            conn,
            "SELECT v.rev, r.time_ms, r.author, r.message, v.layer, v.doc, v.base
             FROM layer_versions v JOIN revisions r ON r.rev = v.rev
             WHERE v.ns = ?1 AND v.layer = ?2
             ORDER BY v.rev DESC LIMIT ?3",
            rusqlite::params![ns.as_str(), layer.as_str(), limit_to_sql(limit)],
            map,
        )?,
        None => rows(
            conn,
            "SELECT v.rev, r.time_ms, r.author, r.message, v.layer, v.doc, v.base
             FROM layer_versions v JOIN revisions r ON r.rev = v.rev
             WHERE v.ns = ?1
             ORDER BY v.rev DESC, v.layer ASC LIMIT ?2",
            rusqlite::params![ns.as_str(), limit_to_sql(limit)],
            map,
        )?,
    };
    let mut out = Vec::with_capacity(found.len());
    for (info_row, layer, doc, base) in found {
        let row = VersionRow {
            rev: info_row.0,
            doc,
            base,
            depth: 0,
            chain_bytes: 0,
        };
        out.push(LayerVersion {
            info: info(info_row)?,
            namespace: ns.clone(),
            document: materialize(conn, ns.as_str(), &layer, &row)?,
            layer: layer_path(ns.as_str(), &layer)?,
            partial: false,
        });
    }
    Ok(out)
}

/// Revisions after `after`, oldest first, with what each wrote.
pub(crate) fn changes_since(conn: &Connection, after: u64, limit: usize) -> Result<Vec<Change>> {
    // No stored revision is that large.
    let Ok(after) = i64::try_from(after) else {
        return Ok(Vec::new());
    };
    let infos: Vec<InfoRow> = rows(
        conn,
        "SELECT rev, time_ms, author, message FROM revisions WHERE rev > ?1 ORDER BY rev LIMIT ?2",
        rusqlite::params![after, limit_to_sql(limit)],
        info_row,
    )?;
    let mut out = Vec::with_capacity(infos.len());
    for row in infos {
        let rev = row.0;
        let mut items = Vec::new();
        let namespaces: Vec<(String, bool)> = rows(
            conn,
            "SELECT name, spec IS NULL FROM namespace_versions WHERE rev = ?1 ORDER BY name",
            [rev],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        for (name, deleted) in namespaces {
            items.push(ChangeItem {
                namespace: namespace_name(&name)?,
                layer: None,
                deleted,
            });
        }
        let layers: Vec<(String, String, bool)> = rows(
            conn,
            "SELECT ns, layer, doc IS NULL FROM layer_versions WHERE rev = ?1 ORDER BY ns, layer",
            [rev],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        for (ns, layer, deleted) in layers {
            items.push(ChangeItem {
                layer: Some(layer_path(&ns, &layer)?),
                namespace: namespace_name(&ns)?,
                deleted,
            });
        }
        out.push(Change {
            info: info(row)?,
            items,
        });
    }
    Ok(out)
}

/// The revisions of every namespace's and every layer's versions, each list
/// ascending, for [`confstrata_core::retention_floor`].
pub(crate) fn version_lists(conn: &Connection) -> Result<Vec<Vec<u64>>> {
    fn group<K: PartialEq>(found: Vec<(K, i64)>, out: &mut Vec<Vec<u64>>) -> Result<()> {
        let mut last: Option<K> = None;
        for (key, rev) in found {
            if last.as_ref() != Some(&key) {
                out.push(Vec::new());
                last = Some(key);
            }
            if let Some(list) = out.last_mut() {
                list.push(rev_from_sql(rev)?);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    let namespaces: Vec<(String, i64)> = rows(
        conn,
        "SELECT name, rev FROM namespace_versions ORDER BY name, rev",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    group(namespaces, &mut out)?;
    let layers: Vec<((String, String), i64)> = rows(
        conn,
        "SELECT ns, layer, rev FROM layer_versions ORDER BY ns, layer, rev",
        [],
        |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)),
    )?;
    group(layers, &mut out)?;
    Ok(out)
}

/// Every revision and its time, ascending.
pub(crate) fn revision_times(conn: &Connection) -> Result<Vec<(u64, Timestamp)>> {
    let found: Vec<(i64, i64)> = rows(
        conn,
        "SELECT rev, time_ms FROM revisions ORDER BY rev",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    found
        .into_iter()
        .map(|(rev, time)| Ok((rev_from_sql(rev)?, Timestamp(time))))
        .collect()
}

/// A revision above every stored one: the writer reads the newest versions.
const LATEST: u64 = i64::MAX as u64;

/// A [`StateReader`] over the writer's open transaction: it sees the writes of
/// the change sets committed earlier in the same batch.
///
/// It keeps the newest version of each layer it read, so that the writer,
/// which stores a new version as a delta from that one, does not read it
/// again (see [`version_write`]). A layer to be changed in place is handed
/// over ([`StateReader::take_layer`]): the writer's kept copy moves to the
/// planner, which changes it and hands it back as the new version, so a
/// one-key commit to a large layer neither copies nor frees the layer.
pub(crate) struct TxReader<'a> {
    conn: &'a Connection,
    /// The writer's kept versions, and this batch's writes so far.
    latest: Option<(&'a mut LatestLayers, &'a mut Pending)>,
    layers: std::collections::HashMap<crate::latest::Key, Option<Read>>,
}

/// A layer's newest version as this reader read it.
struct Read {
    revision: u64,
    size_bound: Option<usize>,
    /// `None`: handed over to the planner.
    document: Option<Arc<Document>>,
}

impl<'a> TxReader<'a> {
    /// A reader over the writer's transaction, taking layer versions the
    /// writer kept (`latest`, `pending`: see `latest.rs`) where they are
    /// still the newest.
    pub(crate) fn new(
        conn: &'a Connection,
        latest: Option<(&'a mut LatestLayers, &'a mut Pending)>,
    ) -> TxReader<'a> {
        TxReader {
            conn,
            latest,
            layers: std::collections::HashMap::new(),
        }
    }

    /// The newest version of a layer if this reader read it: its revision
    /// and its document, unless it was handed over (`Some(None)`: read,
    /// and absent).
    pub(crate) fn read_layer(
        &self,
        ns: &NamespaceName,
        layer: &LayerPath,
    ) -> Option<Option<(Option<&Document>, u64)>> {
        self.layers
            .get(&(ns.clone(), layer.clone()))
            .map(|v| v.as_ref().map(|v| (v.document.as_deref(), v.revision)))
    }

    /// The newest version of a layer: the writer's kept one when it is
    /// still the newest (moved out of the writer's keeping if `take`),
    /// else read from the transaction.
    fn newest(
        &mut self,
        ns: &NamespaceName,
        layer: &LayerPath,
        take: bool,
    ) -> Result<Option<Version>> {
        if let Some((latest, pending)) = &mut self.latest {
            let key = (ns.clone(), layer.clone());
            match pending.get(&key) {
                Some(Some(_)) if take => return Ok(pending.take(&key)),
                Some(Some(v)) => return Ok(Some(v.clone())),
                Some(None) => return Ok(None),
                None => {}
            }
            let row: Option<(i64, bool)> = self
                .conn
                .prepare_cached(
                    "SELECT rev, doc IS NULL FROM layer_versions WHERE ns = ?1 AND layer = ?2 ORDER BY rev DESC LIMIT 1",
                )
                .map_err(db)?
                .query_row(rusqlite::params![ns.as_str(), layer.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(db)?;
            match row {
                None | Some((_, true)) => return Ok(None),
                Some((rev, false)) => {
                    let rev = rev_from_sql(rev)?;
                    let kept = if take {
                        latest.take(&key, rev)
                    } else {
                        latest.get(&key, rev).cloned()
                    };
                    if let Some(v) = kept {
                        return Ok(Some(v));
                    }
                }
            }
        }
        Ok(
            layer_at(self.conn, ns, layer, LATEST)?.map(|(d, r)| Version {
                revision: r,
                document: Arc::new(d),
                size_bound: None,
                weight: 0,
            }),
        )
    }

    /// Reads the newest version of a layer into this reader (once).
    fn read(&mut self, ns: &NamespaceName, layer: &LayerPath) -> Result<Option<&Read>> {
        let key = (ns.clone(), layer.clone());
        let fresh = match self.layers.get(&key) {
            // Handed over: the transaction still holds it as it was.
            Some(Some(Read { document: None, .. })) => true,
            Some(_) => false,
            None => true,
        };
        if fresh {
            let found = self.newest(ns, layer, false)?.map(|v| Read {
                revision: v.revision,
                size_bound: v.size_bound,
                document: Some(v.document),
            });
            self.layers.insert(key.clone(), found);
        }
        Ok(self.layers.get(&key).and_then(Option::as_ref))
    }
}

impl StateReader for TxReader<'_> {
    fn current_revision(&mut self) -> Result<u64> {
        current_revision(self.conn)
    }

    fn namespace(&mut self, name: &NamespaceName) -> Result<Option<(NamespaceSpec, u64)>> {
        let Some((latest, pending)) = &self.latest else {
            return namespace_at(self.conn, name, LATEST);
        };
        // The newest row's revision (one index seek); its declaration is
        // parsed only when the writer does not keep it.
        let row: Option<(i64, bool)> = self
            .conn
            .prepare_cached(
                "SELECT rev, spec IS NULL FROM namespace_versions WHERE name = ?1 ORDER BY rev DESC LIMIT 1",
            )
            .map_err(db)?
            .query_row([name.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db)?;
        let rev = match row {
            None | Some((_, true)) => return Ok(None),
            Some((rev, false)) => rev_from_sql(rev)?,
        };
        if let Some(spec) = latest.spec(name, rev) {
            return Ok(Some((NamespaceSpec::clone(&spec), rev)));
        }
        let found = namespace_at(self.conn, name, LATEST)?;
        if let Some((spec, at)) = &found {
            latest.keep_spec(pending, name, *at, Arc::new(spec.clone()));
        }
        Ok(found)
    }

    fn layer_paths(&mut self, ns: &NamespaceName) -> Result<Vec<LayerPath>> {
        // SQLite takes the bare columns of a `max()` aggregate from the row
        // holding the maximum; a deletion's document is NULL.
        let found: Vec<(String, i64, bool)> = rows(
            self.conn,
            "SELECT layer, max(rev), doc IS NULL FROM layer_versions WHERE ns = ?1 GROUP BY layer ORDER BY layer",
            [ns.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        found
            .into_iter()
            .filter(|(_, _, deleted)| !deleted)
            .map(|(layer, _, _)| layer_path(ns.as_str(), &layer))
            .collect()
    }

    fn namespace_names(&mut self) -> Result<Vec<NamespaceName>> {
        let found: Vec<(String, i64, bool)> = rows(
            self.conn,
            "SELECT name, max(rev), spec IS NULL FROM namespace_versions GROUP BY name ORDER BY name",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        found
            .into_iter()
            .filter(|(_, _, deleted)| !deleted)
            .map(|(name, _, _)| namespace_name(&name))
            .collect()
    }

    fn layer(&mut self, ns: &NamespaceName, layer: &LayerPath) -> Result<Option<(Document, u64)>> {
        Ok(self.read(ns, layer)?.and_then(|r| {
            r.document
                .as_ref()
                .map(|d| (Document::clone(d), r.revision))
        }))
    }

    fn take_layer(
        &mut self,
        ns: &NamespaceName,
        layer: &LayerPath,
    ) -> Result<Option<(Document, u64)>> {
        let key = (ns.clone(), layer.clone());
        // This reader's own reference goes first, so the kept copy is the
        // only one left and moves out without a clone.
        self.layers.remove(&key);
        let Some(v) = self.newest(ns, layer, true)? else {
            self.layers.insert(key, None);
            return Ok(None);
        };
        self.layers.insert(
            key,
            Some(Read {
                revision: v.revision,
                size_bound: v.size_bound,
                document: None,
            }),
        );
        let doc = Arc::try_unwrap(v.document).unwrap_or_else(|shared| Document::clone(&shared));
        Ok(Some((doc, v.revision)))
    }

    fn layer_revision(&mut self, ns: &NamespaceName, layer: &LayerPath) -> Result<u64> {
        Ok(self.read(ns, layer)?.map_or(0, |r| r.revision))
    }

    fn layer_size_bound(&mut self, ns: &NamespaceName, layer: &LayerPath) -> Option<usize> {
        self.layers
            .get(&(ns.clone(), layer.clone()))?
            .as_ref()?
            .size_bound
    }
}

// ---- journal and settings ------------------------------------------------

fn mac_from_sql(seq: i64, bytes: &[u8]) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| corrupt(format!("journal record {seq}: the MAC is not 32 bytes")))
}

/// The last journal record's seq and MAC.
pub(crate) fn journal_head(conn: &Connection) -> Result<Option<JournalHead>> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, mac FROM journal ORDER BY seq DESC LIMIT 1")
        .map_err(db)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(db)?;
    row.map(|(seq, mac)| {
        Ok(JournalHead {
            seq: rev_from_sql(seq)?,
            mac: mac_from_sql(seq, &mac)?,
        })
    })
    .transpose()
}

/// Inserts one journal record.
pub(crate) fn insert_journal(conn: &Connection, record: &JournalRecord) -> Result<()> {
    let revision = record.revision.map(to_sql).transpose()?;
    conn.prepare_cached(
        "INSERT INTO journal (seq, time_ms, rev, mac, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(db)?
    .execute(rusqlite::params![
        to_sql(record.seq)?,
        record.time.0,
        revision,
        &record.mac[..],
        record.body
    ])
    .map_err(db)?;
    Ok(())
}

/// Journal records after `after`, oldest first.
pub(crate) fn journal(conn: &Connection, after: u64, limit: usize) -> Result<Vec<JournalRecord>> {
    type Row = (i64, i64, Option<i64>, Vec<u8>, String);
    let found: Vec<Row> = rows(
        conn,
        "SELECT seq, time_ms, rev, mac, body FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        // No record is numbered beyond SQLite's integers: after those, none.
        rusqlite::params![
            i64::try_from(after).unwrap_or(i64::MAX),
            limit_to_sql(limit)
        ],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    found
        .into_iter()
        .map(|(seq, time, rev, mac, body)| {
            Ok(JournalRecord {
                seq: rev_from_sql(seq)?,
                time: Timestamp(time),
                revision: rev.map(rev_from_sql).transpose()?,
                mac: mac_from_sql(seq, &mac)?,
                body,
            })
        })
        .collect()
}

/// Writes or removes one setting.
pub(crate) fn write_setting(conn: &Connection, write: &SettingWrite) -> Result<()> {
    match &write.value {
        Some(v) => conn
            .prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .map_err(db)?
            .execute(rusqlite::params![write.key, v]),
        None => conn
            .prepare_cached("DELETE FROM settings WHERE key = ?1")
            .map_err(db)?
            .execute([&write.key]),
    }
    .map_err(db)?;
    Ok(())
}

/// The settings whose names start with `prefix`.
pub(crate) fn settings(conn: &Connection, prefix: &str) -> Result<Vec<(String, String)>> {
    // Range scan on the primary key: prefix <= key < prefix + U+10FFFF.
    let upper = format!("{prefix}\u{10FFFF}");
    rows(
        conn,
        "SELECT key, value FROM settings WHERE key >= ?1 AND key < ?2 ORDER BY key",
        rusqlite::params![prefix, upper],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
