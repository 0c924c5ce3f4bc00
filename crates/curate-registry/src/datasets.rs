//! Datasets, their immutable numbered versions, tags, resolution and diffs.

use std::collections::{BTreeMap, BTreeSet};

use crate::db::{first, Cols, Db};
use crate::error::{Error, Result};
use crate::types::{
    DatasetInfo, FileEntry, FileReplacement, NewVersion, SourceFile, Version, VersionDiff,
    VersionRef,
};
use crate::{now_ms, Registry};

/// How a reference names its version.
enum Selector<'a> {
    Latest,
    Number(i64),
    Tag(&'a str),
}

/// Splits `name@selector` (bare `name` means latest) at the last `@`.
fn parse_reference(reference: &str) -> Result<(&str, Selector<'_>)> {
    let bad = |why| Error::InvalidReference { reference: reference.to_owned(), why };
    let (name, sel) = match reference.rsplit_once('@') {
        Some((name, sel)) => (name, sel),
        None => (reference, "latest"),
    };
    if name.is_empty() {
        return Err(bad("empty dataset name"));
    }
    let selector = if sel == "latest" {
        Selector::Latest
    } else if !sel.is_empty() && sel.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = sel.parse().map_err(|_| bad("version number out of range"))?;
        if n < 1 {
            return Err(bad("versions are numbered from 1"));
        }
        Selector::Number(n)
    } else if sel.is_empty() {
        return Err(bad("nothing after '@'"));
    } else {
        Selector::Tag(sel)
    };
    Ok((name, selector))
}

/// Tags must not be confusable with version numbers or `latest`.
fn check_tag(tag: &str) -> Result<()> {
    let bad = |why| Err(Error::InvalidTag { tag: tag.to_owned(), why });
    if tag.is_empty() {
        return bad("empty");
    }
    if tag == "latest" {
        return bad("'latest' is reserved");
    }
    if tag.bytes().all(|b| b.is_ascii_digit()) {
        return bad("all-digit tags would read as version numbers");
    }
    if tag.contains('@') || tag.chars().any(char::is_whitespace) {
        return bad("must not contain '@' or whitespace");
    }
    Ok(())
}

/// Resolves a reference inside a transaction to (version row id, dataset id, reference).
pub(crate) fn resolve_in(db: &mut dyn Db, reference: &str) -> Result<(i64, i64, VersionRef)> {
    let (name, selector) = parse_reference(reference)?;
    let row = db
        .query("SELECT id, last_version FROM datasets WHERE name = ?", &[name.into()])?
        .into_iter()
        .next()
        .ok_or_else(|| Error::DatasetNotFound(name.to_owned()))?;
    let mut c = Cols::new(row);
    let (dataset_id, last) = (c.int()?, c.int()?);
    let rows = match selector {
        Selector::Latest => db.query(
            "SELECT id, version FROM versions WHERE dataset_id = ? ORDER BY version DESC LIMIT 1",
            &[dataset_id.into()],
        )?,
        Selector::Number(n) if n <= last => db.query(
            "SELECT id, version FROM versions WHERE dataset_id = ? AND version = ?",
            &[dataset_id.into(), n.into()],
        )?,
        Selector::Number(_) => Vec::new(),
        Selector::Tag(tag) => db.query(
            "SELECT v.id, v.version FROM tags t JOIN versions v ON v.id = t.version_id \
             WHERE t.dataset_id = ? AND t.tag = ?",
            &[dataset_id.into(), tag.into()],
        )?,
    };
    let row = rows.into_iter().next().ok_or_else(|| Error::VersionNotFound(reference.to_owned()))?;
    let mut c = Cols::new(row);
    let (id, version) = (c.int()?, c.int()?);
    Ok((id, dataset_id, VersionRef { dataset: name.to_owned(), version }))
}

impl Registry {
    /// Commits the next version of `v.dataset` atomically: manifest, derivation and cache
    /// references appear together or not at all. A version's records are its files' rows,
    /// so the cost is one row per file, whatever the number of records.
    ///
    /// Concurrent commits to one dataset serialise on the dataset row and get
    /// consecutive numbers.
    pub fn commit_version(&self, v: &NewVersion) -> Result<VersionRef> {
        validate_manifest(v)?;
        let schema = serde_json::to_string(&v.schema)?;
        self.write(|db| {
            let parents = v.parents.iter().map(|p| resolve_in(db, p)).collect::<Result<Vec<_>>>()?;
            let derived_from = parents.iter().find(|p| p.2.dataset != v.dataset).map(|p| p.1);
            db.execute(
                "INSERT INTO datasets (name, derived_from, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                &[v.dataset.as_str().into(), derived_from.into(), now_ms().into()],
            )?;
            // The row lock taken here is what orders concurrent commits.
            let row = first_row(db.query(
                "UPDATE datasets SET last_version = last_version + 1 WHERE name = ? RETURNING id, last_version",
                &[v.dataset.as_str().into()],
            )?)?;
            let mut c = Cols::new(row);
            let (dataset_id, number) = (c.int()?, c.int()?);
            if let Some(parent) = derived_from {
                db.execute(
                    "UPDATE datasets SET derived_from = ? WHERE id = ? AND derived_from IS NULL",
                    &[parent.into(), dataset_id.into()],
                )?;
            }
            let version_id = first(db.query(
                "INSERT INTO versions (dataset_id, version, created_at, run_id, spec_hash, schema_json, forget_audit_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                &[
                    dataset_id.into(),
                    number.into(),
                    now_ms().into(),
                    v.run.into(),
                    v.spec_hash.as_deref().into(),
                    schema.as_str().into(),
                    v.forget_audit.into(),
                ],
            )?)
            .ok_or_else(|| Error::Corrupt("INSERT RETURNING gave no row".into()))?
            .int()?;
            for f in &v.files {
                db.execute(
                    "INSERT INTO version_files (version_id, path, content_hash, row_count, byte_size) VALUES (?, ?, ?, ?, ?)",
                    &[
                        version_id.into(),
                        f.path.as_str().into(),
                        f.content_hash.as_str().into(),
                        to_i64(f.rows)?.into(),
                        to_i64(f.bytes)?.into(),
                    ],
                )?;
            }
            for (parent_id, _, _) in &parents {
                db.execute(
                    "INSERT INTO version_parents (version_id, parent_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    &[version_id.into(), (*parent_id).into()],
                )?;
            }
            for s in &v.sources {
                db.execute(
                    "INSERT INTO version_sources (version_id, path, content_hash) VALUES (?, ?, ?)",
                    &[version_id.into(), s.path.as_str().into(), s.content_hash.as_str().into()],
                )?;
            }
            for key in &v.cache_keys {
                db.execute(
                    "INSERT INTO version_cache_refs (version_id, cache_key) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    &[version_id.into(), key.as_str().into()],
                )?;
            }
            let reference = VersionRef { dataset: v.dataset.clone(), version: number };
            if let Some(job) = v.job {
                db.execute("UPDATE jobs SET version = ? WHERE id = ?", &[reference.to_string().into(), job.into()])?;
            }
            if let Some(w) = &v.watch {
                crate::watches::commit_cursor(db, w, &reference.to_string())?;
            }
            Ok(reference)
        })
    }

    /// Resolves `name`, `name@N`, `name@latest` or `name@tag` to a concrete version.
    pub fn resolve(&self, reference: &str) -> Result<VersionRef> {
        self.read(|db| resolve_in(db, reference).map(|r| r.2))
    }

    /// Loads the full manifest and derivation of a version.
    pub fn version(&self, reference: &str) -> Result<Version> {
        self.read(|db| {
            let (id, _, reference) = resolve_in(db, reference)?;
            load_version(db, id, reference)
        })
    }

    /// Every version of `dataset`, oldest first (versions removed by gc are absent).
    pub fn versions(&self, dataset: &str) -> Result<Vec<Version>> {
        self.read(|db| {
            let rows = db.query(
                "SELECT v.id, v.version FROM versions v JOIN datasets d ON d.id = v.dataset_id \
                 WHERE d.name = ? ORDER BY v.version",
                &[dataset.into()],
            )?;
            if rows.is_empty() && db.query("SELECT 1 FROM datasets WHERE name = ?", &[dataset.into()])?.is_empty() {
                return Err(Error::DatasetNotFound(dataset.to_owned()));
            }
            rows.into_iter()
                .map(|row| {
                    let mut c = Cols::new(row);
                    let (id, version) = (c.int()?, c.int()?);
                    load_version(db, id, VersionRef { dataset: dataset.to_owned(), version })
                })
                .collect()
        })
    }

    /// Every data file path any version's manifest lists, so a store can delete the rest.
    pub fn referenced_files(&self) -> Result<BTreeSet<String>> {
        self.read(referenced_files_in)
    }

    /// Purges records from an existing version: swaps the listed files for rewritten
    /// ones and drops the files `removed` (left empty). The one sanctioned edit of a
    /// committed version, for `forget --purge`.
    pub fn purge_version(&self, reference: &str, files: &[FileReplacement], removed: &[String]) -> Result<()> {
        self.write(|db| {
            let (version_id, _, _) = resolve_in(db, reference)?;
            for path in removed {
                db.execute("DELETE FROM version_files WHERE version_id = ? AND path = ?", &[version_id.into(), path.as_str().into()])?;
            }
            for f in files {
                let n = db.execute(
                    "UPDATE version_files SET path = ?, content_hash = ?, row_count = ?, byte_size = ? \
                     WHERE version_id = ? AND path = ?",
                    &[
                        f.new.path.as_str().into(),
                        f.new.content_hash.as_str().into(),
                        to_i64(f.new.rows)?.into(),
                        to_i64(f.new.bytes)?.into(),
                        version_id.into(),
                        f.old_path.as_str().into(),
                    ],
                )?;
                if n == 0 {
                    return Err(Error::InvalidManifest(format!("{reference} lists no file {}", f.old_path)));
                }
            }
            Ok(())
        })
    }

    /// Lists datasets by name.
    pub fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        self.read(|db| {
            db.query(
                "SELECT d.name, p.name, d.last_version FROM datasets d \
                 LEFT JOIN datasets p ON p.id = d.derived_from ORDER BY d.name",
                &[],
            )?
            .into_iter()
            .map(|row| {
                let mut c = Cols::new(row);
                Ok(DatasetInfo { name: c.text()?, derived_from: c.opt_text()?, latest: c.int()? })
            })
            .collect()
        })
    }

    /// Points a new tag at a version; fails if the tag already names another version.
    pub fn tag(&self, reference: &str, tag: &str) -> Result<VersionRef> {
        self.set_tag(reference, tag, false)
    }

    /// Points a tag at a version, moving it if it already exists.
    pub fn move_tag(&self, reference: &str, tag: &str) -> Result<VersionRef> {
        self.set_tag(reference, tag, true)
    }

    fn set_tag(&self, reference: &str, tag: &str, allow_move: bool) -> Result<VersionRef> {
        check_tag(tag)?;
        self.write(|db| {
            let (version_id, dataset_id, target) = resolve_in(db, reference)?;
            let existing = db.query(
                "SELECT v.version FROM tags t JOIN versions v ON v.id = t.version_id WHERE t.dataset_id = ? AND t.tag = ?",
                &[dataset_id.into(), tag.into()],
            )?;
            if let Some(current) = first(existing) {
                let current = current.int()?;
                if current != target.version && !allow_move {
                    return Err(Error::TagExists { tag: tag.to_owned(), dataset: target.dataset.clone(), version: current });
                }
            }
            db.execute(
                "INSERT INTO tags (dataset_id, tag, version_id, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (dataset_id, tag) DO UPDATE SET version_id = excluded.version_id, updated_at = excluded.updated_at",
                &[dataset_id.into(), tag.into(), version_id.into(), now_ms().into()],
            )?;
            Ok(target.clone())
        })
    }

    /// File-level diff from `old` to `new` (by path, then content hash).
    pub fn diff(&self, old: &str, new: &str) -> Result<VersionDiff> {
        self.read(|db| {
            let (old_id, _, _) = resolve_in(db, old)?;
            let (new_id, _, _) = resolve_in(db, new)?;
            let mut before: BTreeMap<String, FileEntry> =
                load_files(db, old_id)?.into_iter().map(|f| (f.path.clone(), f)).collect();
            let mut diff = VersionDiff::default();
            for f in load_files(db, new_id)? {
                match before.remove(&f.path) {
                    None => diff.added.push(f),
                    Some(o) if o != f => diff.changed.push((o, f)),
                    Some(_) => {}
                }
            }
            diff.removed = before.into_values().collect();
            Ok(diff)
        })
    }
}

/// Store paths still in use: every version's data files, and the lineage sidecars and
/// indexes of recorded run outputs.
pub(crate) fn referenced_files_in(db: &mut dyn Db) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for sql in [
        "SELECT DISTINCT path FROM version_files",
        "SELECT DISTINCT lineage_path FROM lineage_files",
        "SELECT DISTINCT index_path FROM lineage_files",
        "SELECT DISTINCT pack_path FROM lineage_blooms",
    ] {
        for r in db.query(sql, &[])? {
            out.insert(Cols::new(r).text()?);
        }
    }
    Ok(out)
}

fn first_row(rows: Vec<crate::db::Row>) -> Result<crate::db::Row> {
    rows.into_iter().next().ok_or_else(|| Error::Corrupt("statement returned no row".into()))
}

/// Counts are u64 in the API and BIGINT in the store.
fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidManifest(format!("count {v} exceeds 2^63")))
}

fn validate_manifest(v: &NewVersion) -> Result<()> {
    if v.dataset.is_empty() || v.dataset.contains('@') {
        return Err(Error::InvalidManifest(format!("dataset name {:?} must be non-empty and free of '@'", v.dataset)));
    }
    let mut seen = std::collections::HashSet::new();
    for f in &v.files {
        if !seen.insert(f.path.as_str()) {
            return Err(Error::InvalidManifest(format!("file {} listed twice", f.path)));
        }
    }
    Ok(())
}

pub(crate) fn load_files(db: &mut dyn Db, version_id: i64) -> Result<Vec<FileEntry>> {
    db.query(
        "SELECT path, content_hash, row_count, byte_size FROM version_files WHERE version_id = ? ORDER BY path",
        &[version_id.into()],
    )?
    .into_iter()
    .map(|row| {
        let mut c = Cols::new(row);
        Ok(FileEntry { path: c.text()?, content_hash: c.text()?, rows: c.int()? as u64, bytes: c.int()? as u64 })
    })
    .collect()
}

fn load_version(db: &mut dyn Db, id: i64, reference: VersionRef) -> Result<Version> {
    let row = first_row(db.query(
        "SELECT created_at, run_id, spec_hash, schema_json, forget_audit_id FROM versions WHERE id = ?",
        &[id.into()],
    )?)?;
    let mut c = Cols::new(row);
    let (created_at_ms, run, spec_hash) = (c.int()?, c.opt_int()?, c.opt_text()?);
    let schema = serde_json::from_str(&c.text()?)?;
    let forget_audit = c.opt_int()?;
    let files = load_files(db, id)?;
    let parents = db
        .query(
            "SELECT d.name, v.version FROM version_parents p JOIN versions v ON v.id = p.parent_id \
             JOIN datasets d ON d.id = v.dataset_id WHERE p.version_id = ? ORDER BY d.name, v.version",
            &[id.into()],
        )?
        .into_iter()
        .map(|row| {
            let mut c = Cols::new(row);
            Ok(VersionRef { dataset: c.text()?, version: c.int()? })
        })
        .collect::<Result<_>>()?;
    let sources = db
        .query("SELECT path, content_hash FROM version_sources WHERE version_id = ? ORDER BY path", &[id.into()])?
        .into_iter()
        .map(|row| {
            let mut c = Cols::new(row);
            Ok(SourceFile { path: c.text()?, content_hash: c.text()? })
        })
        .collect::<Result<_>>()?;
    let texts = |db: &mut dyn Db, sql: &str| -> Result<Vec<String>> {
        db.query(sql, &[id.into()])?.into_iter().map(|r| Cols::new(r).text()).collect()
    };
    let tags = texts(db, "SELECT tag FROM tags WHERE version_id = ? ORDER BY tag")?;
    let cache_keys = texts(db, "SELECT cache_key FROM version_cache_refs WHERE version_id = ? ORDER BY cache_key")?;
    Ok(Version { reference, created_at_ms, files, schema, parents, sources, spec_hash, run, tags, cache_keys, forget_audit })
}
