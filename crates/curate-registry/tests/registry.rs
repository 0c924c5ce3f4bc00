//! The registry test suite; every test runs against SQLite and PostgreSQL.

mod common;

use std::collections::BTreeMap;

use common::Backend;
use curate_registry::*;

backend_tests!(
    migrations_are_idempotent,
    newer_schema_is_refused,
    runs_record_counters_and_outcomes,
    concurrent_commits_get_distinct_ordered_versions,
    tags_and_resolution,
    manifest_and_derivation_round_trip,
    file_diff,
    cache_index_and_gc,
    gc_keeps_parents_of_kept_versions,
    lineage_files_are_rows_per_file,
    forget_audits_and_notes,
    failed_commit_leaves_nothing,
    legacy_lineage_is_refused_until_converted,
    legacy_lineage_is_read_in_pages_and_converted,
    runs_are_listed_newest_first,
    versions_listing_and_purge,
    abandoned_runs_resume_under_their_id,
    gc_sweeps_only_while_no_run_is_running,
    read_only_open_reads_without_migrating,
);

fn file(path: &str, hash: &str, rows: u64) -> FileEntry {
    FileEntry { path: path.into(), content_hash: hash.into(), rows, bytes: rows * 100 }
}

fn manifest(dataset: &str, files: Vec<FileEntry>) -> NewVersion {
    NewVersion { dataset: dataset.into(), files, schema: serde_json::json!({"fields": ["text"]}), ..Default::default() }
}

fn commit(reg: &Registry, v: &NewVersion) -> VersionRef {
    reg.commit_version(v).expect("commit")
}

fn vref(dataset: &str, version: i64) -> VersionRef {
    VersionRef { dataset: dataset.into(), version }
}

fn start_run(reg: &Registry) -> RunId {
    reg.start_run(&NewRun { pipeline: "web", spec: "steps: []", spec_hash: "s1", code_version: "0.1.0", ..Default::default() })
        .expect("start run")
}

fn migrations_are_idempotent(b: &mut Backend) {
    let reg = b.open();
    let v = reg.schema_version().unwrap();
    assert!(v >= 1);
    assert_eq!(reg.migrate().unwrap(), v);
    drop(reg);
    // Reopening re-runs the migration check against an up-to-date store.
    let reg = b.open();
    assert_eq!(reg.schema_version().unwrap(), v);
    commit(&reg, &manifest("d", vec![file("a", "h", 1)]));
    assert_eq!(reg.migrate().unwrap(), v);
    assert_eq!(reg.resolve("d").unwrap(), vref("d", 1));
}

fn newer_schema_is_refused(b: &mut Backend) {
    drop(b.open());
    b.raw("INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)");
    match Registry::open(b.location()) {
        Err(Error::SchemaTooNew { found: 9999, known }) => assert!(known < 9999),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

fn runs_record_counters_and_outcomes(b: &mut Backend) {
    let reg = b.open();
    let run = start_run(&reg);
    let counters = StepCounters {
        input: 10,
        kept: 7,
        dropped: BTreeMap::from([("too_short".to_owned(), 2), ("lang".to_owned(), 1)]),
        errors: 0,
    };
    reg.record_step(run, "filter", &counters).unwrap();
    reg.record_task_outcomes(
        run,
        &[
            TaskOutcome { task_key: "aa".into(), step: "filter".into(), decision: TaskDecision::Reused, reason: "cache hit".into() },
            TaskOutcome {
                task_key: "bb".into(),
                step: "dedup".into(),
                decision: TaskDecision::Recomputed,
                reason: "params changed".into(),
            },
        ],
    )
    .unwrap();
    let r = reg.run(run).unwrap();
    assert_eq!(r.status, RunStatus::Running);
    assert_eq!(r.ended_at_ms, None);
    reg.finish_run(run, RunStatus::Succeeded).unwrap();
    let r = reg.run(run).unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert!(r.ended_at_ms.is_some());
    assert_eq!(r.steps.get("filter"), Some(&counters));
    assert_eq!(r.tasks.len(), 2);
    assert_eq!(r.tasks[1].decision, TaskDecision::Recomputed);
    assert_eq!(r.tasks[1].reason, "params changed");
    assert!(matches!(reg.finish_run(run + 1000, RunStatus::Failed), Err(Error::RunNotFound(_))));
    assert!(matches!(reg.record_step(run + 1000, "x", &counters), Err(Error::RunNotFound(_))));
}

fn concurrent_commits_get_distinct_ordered_versions(b: &mut Backend) {
    const THREADS: usize = 4;
    const EACH: usize = 5;
    drop(b.open());
    let location = b.location().to_owned();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let location = location.clone();
            std::thread::spawn(move || {
                // A handle per thread, like separate processes.
                let reg = Registry::open(&location).expect("open");
                (0..EACH)
                    .map(|i| {
                        let path = format!("t{t}-{i}.parquet");
                        let v = manifest("shared", vec![file(&path, &path, 1)]);
                        reg.commit_version(&v).expect("commit").version
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        let mine = h.join().expect("thread");
        // Each committer's versions come out in its own commit order.
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        all.extend(mine);
    }
    all.sort();
    assert_eq!(all, (1..=(THREADS * EACH) as i64).collect::<Vec<_>>());
    let reg = b.open();
    assert_eq!(reg.resolve("shared@latest").unwrap().version, (THREADS * EACH) as i64);
    // Every version holds exactly the one file its committer gave it.
    let mut paths = std::collections::BTreeSet::new();
    for n in 1..=(THREADS * EACH) {
        let v = reg.version(&format!("shared@{n}")).unwrap();
        assert_eq!(v.files.len(), 1);
        paths.insert(v.files[0].path.clone());
    }
    assert_eq!(paths.len(), THREADS * EACH);
}

fn tags_and_resolution(b: &mut Backend) {
    let reg = b.open();
    for i in 1..=4 {
        commit(&reg, &manifest("web-en", vec![file("a", &format!("h{i}"), i)]));
    }
    assert_eq!(reg.resolve("web-en").unwrap(), vref("web-en", 4));
    assert_eq!(reg.resolve("web-en@latest").unwrap(), vref("web-en", 4));
    assert_eq!(reg.resolve("web-en@2").unwrap(), vref("web-en", 2));
    assert!(matches!(reg.resolve("web-en@5"), Err(Error::VersionNotFound(_))));
    assert!(matches!(reg.resolve("nope@1"), Err(Error::DatasetNotFound(_))));
    assert!(matches!(reg.resolve("web-en@0"), Err(Error::InvalidReference { .. })));
    assert!(matches!(reg.resolve("web-en@"), Err(Error::InvalidReference { .. })));
    assert!(matches!(reg.resolve("@3"), Err(Error::InvalidReference { .. })));

    assert_eq!(reg.tag("web-en@4", "release-2026-12").unwrap(), vref("web-en", 4));
    assert_eq!(reg.resolve("web-en@release-2026-12").unwrap(), vref("web-en", 4));
    // Re-tagging the same version is a no-op; pointing it elsewhere needs move_tag.
    reg.tag("web-en@4", "release-2026-12").unwrap();
    match reg.tag("web-en@2", "release-2026-12") {
        Err(Error::TagExists { version: 4, .. }) => {}
        other => panic!("expected TagExists, got {other:?}"),
    }
    assert_eq!(reg.resolve("web-en@release-2026-12").unwrap().version, 4);
    reg.move_tag("web-en@2", "release-2026-12").unwrap();
    assert_eq!(reg.resolve("web-en@release-2026-12").unwrap().version, 2);
    assert_eq!(reg.version("web-en@2").unwrap().tags, vec!["release-2026-12".to_owned()]);
    assert!(reg.version("web-en@4").unwrap().tags.is_empty());
    assert!(matches!(reg.resolve("web-en@nosuchtag"), Err(Error::VersionNotFound(_))));

    for bad in ["latest", "12", "", "a@b", "has space"] {
        assert!(matches!(reg.tag("web-en@1", bad), Err(Error::InvalidTag { .. })), "{bad:?}");
    }
    // Tags are per dataset.
    commit(&reg, &manifest("other", vec![file("a", "x", 1)]));
    reg.tag("other@1", "release-2026-12").unwrap();
    assert_eq!(reg.resolve("web-en@release-2026-12").unwrap().version, 2);
}

fn manifest_and_derivation_round_trip(b: &mut Backend) {
    let reg = b.open();
    let run = start_run(&reg);
    let mut global = manifest("web", vec![file("p/1", "h1", 10), file("p/0", "h0", 5)]);
    global.sources = vec![SourceFile { path: "raw/a.jsonl".into(), content_hash: "ra".into() }];
    global.spec_hash = Some("spec-1".into());
    global.run = Some(run);
    commit(&reg, &global);
    let mut special = manifest("web-code", vec![file("c/0", "c0", 2)]);
    special.parents = vec!["web@latest".into()];
    commit(&reg, &special);

    let v = reg.version("web@1").unwrap();
    assert_eq!(v.files, vec![file("p/0", "h0", 5), file("p/1", "h1", 10)]);
    assert_eq!(v.sources, global.sources);
    assert_eq!(v.spec_hash.as_deref(), Some("spec-1"));
    assert_eq!(v.run, Some(run));
    assert_eq!(v.schema, serde_json::json!({"fields": ["text"]}));
    let s = reg.version("web-code").unwrap();
    assert_eq!(s.parents, vec![vref("web", 1)]);
    let info = reg.datasets().unwrap();
    assert_eq!(
        info,
        vec![
            DatasetInfo { name: "web".into(), derived_from: None, latest: 1 },
            DatasetInfo { name: "web-code".into(), derived_from: Some("web".into()), latest: 1 },
        ]
    );
    let mut dup = manifest("web", vec![file("x", "1", 1), file("x", "2", 1)]);
    assert!(matches!(reg.commit_version(&dup), Err(Error::InvalidManifest(_))));
    dup.files.pop();
    dup.parents = vec!["missing@1".into()];
    assert!(matches!(reg.commit_version(&dup), Err(Error::DatasetNotFound(_))));
    assert_eq!(reg.resolve("web").unwrap().version, 1);
}

fn file_diff(b: &mut Backend) {
    let reg = b.open();
    commit(&reg, &manifest("d", vec![file("a", "ha", 2), file("b", "hb", 1), file("c", "hc", 1)]));
    commit(&reg, &manifest("d", vec![file("a", "ha", 2), file("b", "hb2", 1), file("e", "he", 1)]));
    let diff = reg.diff("d@1", "d@2").unwrap();
    assert_eq!(diff.added, vec![file("e", "he", 1)]);
    assert_eq!(diff.removed, vec![file("c", "hc", 1)]);
    assert_eq!(diff.changed, vec![(file("b", "hb", 1), file("b", "hb2", 1))]);
    assert_eq!(reg.diff("d@2", "d@2").unwrap(), VersionDiff::default());
}

fn cache_index_and_gc(b: &mut Backend) {
    let reg = b.open();
    assert_eq!(reg.cache_lookup("k1").unwrap(), None);
    for k in ["k1", "k2", "k3", "k4"] {
        reg.cache_insert(k, &format!("cache/{k}"), &serde_json::json!({"rows": 3})).unwrap();
    }
    let hit = reg.cache_lookup("k1").unwrap().expect("hit");
    assert_eq!(hit.location, "cache/k1");
    assert_eq!(hit.stats, serde_json::json!({"rows": 3}));
    assert!(hit.last_used_ms >= hit.created_at_ms);
    reg.cache_insert("k1", "cache/k1b", &serde_json::json!({"rows": 4})).unwrap();
    assert_eq!(reg.cache_lookup("k1").unwrap().expect("hit").location, "cache/k1b");

    // d@1 uses k1, d@2 k2, d@3 k3 (tagged), d@4 and d@5 k4; k-free dataset e has 1 version.
    for (i, key) in ["k1", "k2", "k3", "k4", "k4"].iter().enumerate() {
        let mut v = manifest("d", vec![file(&format!("f{i}"), "h", 1)]);
        v.cache_keys = vec![(*key).to_owned()];
        commit(&reg, &v);
    }
    reg.tag("d@3", "keep").unwrap();
    commit(&reg, &manifest("e", vec![file("only", "h", 1)]));
    reg.cache_insert("fresh", "cache/fresh", &serde_json::json!({})).unwrap();

    // A long grace period protects every cache entry recently used.
    let report = reg.gc(&GcPolicy { keep_last: 2, cache_grace_ms: 3_600_000 }).unwrap();
    assert_eq!(
        report.versions.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>(),
        vec![vref("d", 1), vref("d", 2)]
    );
    assert_eq!(report.versions[0].1, vec![file("f0", "h", 1)]);
    assert!(report.cache_entries.is_empty());
    assert!(matches!(reg.resolve("d@1"), Err(Error::VersionNotFound(_))));
    assert_eq!(reg.resolve("d@keep").unwrap().version, 3);
    assert_eq!(reg.resolve("d").unwrap().version, 5);
    assert_eq!(reg.resolve("e").unwrap().version, 1);
    assert!(reg.versions_holding(&["f0".to_owned()]).unwrap().is_empty());

    // Without grace, entries referenced by no surviving version go.
    let report = reg.gc(&GcPolicy { keep_last: 2, cache_grace_ms: -1 }).unwrap();
    assert!(report.versions.is_empty());
    let gone: Vec<_> = report.cache_entries.iter().map(|e| (e.key.as_str(), e.location.as_str())).collect();
    assert_eq!(gone, vec![("fresh", "cache/fresh"), ("k1", "cache/k1b"), ("k2", "cache/k2")]);
    assert!(reg.cache_lookup("k1").unwrap().is_none());
    assert!(reg.cache_lookup("k3").unwrap().is_some());
    assert!(reg.cache_lookup("k4").unwrap().is_some());
    // gc twice removes nothing more, and new commits keep numbering after the gap.
    assert_eq!(reg.gc(&GcPolicy { keep_last: 2, cache_grace_ms: -1 }).unwrap(), GcReport::default());
    assert_eq!(commit(&reg, &manifest("d", vec![file("g", "h", 1)])), vref("d", 6));
}

fn gc_keeps_parents_of_kept_versions(b: &mut Backend) {
    let reg = b.open();
    for i in 1..=3 {
        commit(&reg, &manifest("g", vec![file("f", &format!("h{i}"), 1)]));
    }
    // The specialised dataset's only version derives from g@1.
    let mut s = manifest("s", vec![file("f", "s", 1)]);
    s.parents = vec!["g@1".into()];
    commit(&reg, &s);
    let report = reg.gc(&GcPolicy { keep_last: 1, cache_grace_ms: 0 }).unwrap();
    assert_eq!(report.versions.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>(), vec![vref("g", 2)]);
    assert_eq!(reg.version("s").unwrap().parents, vec![vref("g", 1)]);
}

fn lineage(kind: LineageKind, data: Option<&str>, name: &str, rows: u64) -> LineageFile {
    LineageFile { kind, data: data.map(Into::into), lineage: format!("{name}.parquet"), index: format!("{name}.idx"), rows }
}

fn lineage_files_are_rows_per_file(b: &mut Backend) {
    let reg = b.open();
    let run = start_run(&reg);
    let kept = lineage(LineageKind::Kept, Some("d/0"), "l/0", 1_000_000);
    let rejected = lineage(LineageKind::Rejected, None, "l/r0", 5);
    reg.record_lineage_files(run, &[kept.clone(), rejected.clone()]).unwrap();
    let run2 = start_run(&reg);
    reg.record_lineage_files(run2, std::slice::from_ref(&kept)).unwrap();
    let all = reg.lineage_files().unwrap();
    assert_eq!(
        all.iter().map(|r| (r.run, r.file.clone())).collect::<Vec<_>>(),
        vec![(run, kept.clone()), (run, rejected.clone()), (run2, kept.clone())]
    );
    assert!(matches!(reg.record_lineage_files(run + 100, &[]), Err(Error::RunNotFound(_))));

    commit(&reg, &manifest("web", vec![file("d/0", "h", 1_000_000)]));
    commit(&reg, &manifest("web", vec![file("d/0", "h", 1_000_000), file("d/1", "h1", 1)]));
    let holding = reg.versions_holding(&["d/0".to_owned(), "d/1".to_owned(), "nope".to_owned()]).unwrap();
    assert_eq!(holding["d/0"], vec![vref("web", 1), vref("web", 2)]);
    assert_eq!(holding["d/1"], vec![vref("web", 2)]);
    assert!(!holding.contains_key("nope"));
    // Lineage files stay referenced (gc keeps them) as long as a row names them.
    let referenced = reg.referenced_files().unwrap();
    for p in ["d/0", "d/1", "l/0.parquet", "l/0.idx", "l/r0.parquet", "l/r0.idx"] {
        assert!(referenced.contains(p), "{p}");
    }

    // A purge points every row of a rewritten file at its replacement; an emptied one goes.
    let new = lineage(LineageKind::Kept, Some("d/0b"), "l/0b", 999_999);
    reg.replace_lineage_files(&[("l/0.parquet".to_owned(), new.clone())]).unwrap();
    reg.drop_lineage_files(&["l/r0.parquet".to_owned()]).unwrap();
    let all: Vec<LineageFile> = reg.lineage_files().unwrap().into_iter().map(|r| r.file).collect();
    assert_eq!(all, vec![new.clone(), new]);
    assert_eq!(reg.run_outputs(&[run, run2]).unwrap().len(), 0, "runs started without an output");
}

fn forget_audits_and_notes(b: &mut Backend) {
    let reg = b.open();
    commit(&reg, &manifest("web", vec![file("web/0", "h0", 5)]));
    let plan = vec![DatasetForget {
        dataset: "web".into(),
        latest: 1,
        exclude: vec![Exclusion { record_id: "g3".into(), file: "web/0".into() }],
        affected_versions: vec![1],
    }];
    let audit = reg.record_forget(&["s3".to_owned(), "g3".to_owned()], "GDPR request 42", "alice", &plan).unwrap();
    let mut rewritten = manifest("web", vec![file("web/0b", "h0b", 4)]);
    rewritten.forget_audit = Some(audit);
    commit(&reg, &rewritten);
    let again = reg.record_forget(&["s3".to_owned()], "re-check", "bob", &[]).unwrap();
    assert_ne!(again, audit);

    let entry = reg.audit(audit).unwrap();
    assert_eq!((entry.actor.as_str(), entry.reason.as_str()), ("alice", "GDPR request 42"));
    assert_eq!(entry.sources, vec!["s3".to_owned(), "g3".to_owned()]);
    assert_eq!(entry.plan, plan);
    assert_eq!(entry.resulting_versions, vec![vref("web", 2)]);
    assert!(matches!(reg.audit(again + 100), Err(Error::AuditNotFound(_))));

    // explain names the requests that reached a record (through any of its ids) and the
    // versions that left it out.
    let notes: Vec<(AuditId, String, String, Vec<VersionRef>)> = reg
        .forget_notes(&["g3".to_owned(), "s3".to_owned()])
        .unwrap()
        .into_iter()
        .map(|n| (n.audit, n.actor, n.source_id, n.without))
        .collect();
    assert_eq!(notes, vec![(audit, "alice".into(), "s3".into(), vec![vref("web", 2)]), (again, "bob".into(), "s3".into(), vec![])]);
    assert!(reg.forget_notes(&["c0".to_owned()]).unwrap().is_empty());
}

fn failed_commit_leaves_nothing(b: &mut Backend) {
    let reg = b.open();
    // The second file's row count is refused after the version row and the first file
    // were written: the transaction takes them back.
    let v = manifest("d", vec![file("a", "h", 1), FileEntry { path: "b".into(), content_hash: "h".into(), rows: u64::MAX, bytes: 1 }]);
    assert!(matches!(reg.commit_version(&v), Err(Error::InvalidManifest(_))));
    assert!(matches!(reg.resolve("d"), Err(Error::DatasetNotFound(_))));
    assert!(reg.datasets().unwrap().is_empty());
    // The handle is still usable and numbering was not consumed.
    assert_eq!(reg.commit_version(&manifest("d", vec![file("a", "h", 1)])).unwrap(), vref("d", 1));
    let fresh = b.open();
    assert_eq!(fresh.resolve("d").unwrap(), vref("d", 1));
    assert_eq!(fresh.version("d@1").unwrap().files, vec![file("a", "h", 1)]);
}

#[test]
fn sqlite_location_creates_missing_directories() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fresh/checkout/.curate/registry.db");
    let location = format!("sqlite://{}", path.display());
    let reg = Registry::open(&location).expect("open in a missing directory");
    commit(&reg, &manifest("d", vec![file("a", "h", 1)]));
    assert!(path.is_file());
    assert_eq!(Registry::open(&location).unwrap().resolve("d").unwrap(), vref("d", 1));
}

fn legacy_lineage_is_refused_until_converted(b: &mut Backend) {
    drop(b.open());
    // Put the store back as migration 3 left it: per-record lineage tables, one row.
    b.raw(
        "DROP TABLE lineage_files; DROP TABLE lineage_blooms; \
         DROP TABLE job_events; DROP TABLE job_tasks; DROP TABLE jobs; DROP TABLE pipelines; DROP TABLE workers; \
         DROP TABLE tokens; DROP TABLE audit_log; DROP TABLE service_counters; DROP TABLE watches; \
         CREATE TABLE op_chains (id BIGINT PRIMARY KEY, run_id BIGINT NOT NULL, step TEXT NOT NULL, ops TEXT NOT NULL); \
         CREATE TABLE source_files (id BIGINT PRIMARY KEY, path TEXT NOT NULL UNIQUE); \
         CREATE TABLE records (record_id TEXT NOT NULL, chain_id BIGINT NOT NULL, source_id TEXT NOT NULL, \
         source_file_id BIGINT NOT NULL, source_offset BIGINT NOT NULL, drop_step TEXT, drop_reason TEXT, \
         PRIMARY KEY (record_id, chain_id)); \
         CREATE TABLE version_records (version_id BIGINT NOT NULL, record_id TEXT NOT NULL, file_id BIGINT NOT NULL, \
         PRIMARY KEY (version_id, record_id)); \
         INSERT INTO records VALUES ('old-1', 1, 'src-old', 1, 3, NULL, NULL); \
         DELETE FROM schema_migrations WHERE version > 3",
    );
    match b.try_open() {
        Err(Error::LegacyLineage { records }) => assert_eq!(records, 1),
        other => panic!("expected LegacyLineage, got {:?}", other.map(|_| ())),
    }
    // Once converted (the rows gone), the store migrates.
    b.raw("DELETE FROM records");
    let reg = b.open();
    assert_eq!(reg.schema_version().unwrap(), 5);
    reg.lineage_files().unwrap();
}

fn legacy_lineage_is_read_in_pages_and_converted(b: &mut Backend) {
    let reg = Registry::open_for_upgrade(b.location()).unwrap();
    assert_eq!(reg.schema_version().unwrap(), 3, "migration 4 is not applied");
    let run = start_run(&reg);
    let v1 = commit(&reg, &NewVersion { run: Some(run), ..manifest("d", vec![file("objects/a", "ha", 2)]) });
    // A version without a run (committed through the API) takes its parent's.
    commit(&reg, &NewVersion { parents: vec![v1.to_string()], ..manifest("d", vec![file("objects/a", "ha", 2), file("objects/b", "hb", 1)]) });
    commit(&reg, &manifest("orphan", vec![file("objects/c", "hc", 1)]));
    assert_eq!(
        reg.legacy_data_files().unwrap(),
        [("objects/a", Some(run)), ("objects/b", Some(run)), ("objects/c", None)]
            .map(|(p, run)| LegacyDataFile { path: p.into(), run })
    );
    b.raw(&format!(
        "INSERT INTO op_chains (run_id, step, ops) VALUES ({run}, '00-a', '[{{\"name\":\"a\",\"version\":\"1\",\"params_hash\":\"h\"}}]'), \
         ({run}, '01-b', '[{{\"name\":\"a\",\"version\":\"1\",\"params_hash\":\"h\"}},{{\"name\":\"b\",\"version\":\"2\",\"params_hash\":\"h\",\"params\":{{\"n\":1}}}}]'); \
         INSERT INTO source_files (path) VALUES ('in.jsonl'); \
         INSERT INTO records VALUES ('k', 2, 'k', 1, 0, NULL, NULL), ('r3', 1, 'r3', 1, 30, '00-a', 'a:x'), ('r1', 2, 'r1', 1, 10, '01-b', 'b:y'), \
         ('r2', 2, 'r2', 1, 20, '01-b', 'b:y'), ('r0', 1, 'r0', 1, 0, '00-a', 'a:x')"
    ));
    assert_eq!(reg.legacy_runs().unwrap(), [run]);
    let ops = reg.legacy_operators(run).unwrap();
    assert_eq!(ops.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["a", "b"], "the longest chain");
    assert_eq!((ops[0].params.clone(), ops[1].params.clone()), (serde_json::Value::Null, serde_json::json!({"n": 1})));
    // Pages of two continue where the last one stopped; kept records are not rejects.
    let (mut cursor, mut seen) = (RejectCursor::default(), Vec::new());
    loop {
        let (page, next) = reg.legacy_rejects(run, &cursor, 2).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        seen.extend(page.into_iter().map(|r| (r.record_id, r.source_offset, r.drop_step)));
        cursor = next;
    }
    let want = [("r0", 0, "00-a"), ("r3", 30, "00-a"), ("r1", 10, "01-b"), ("r2", 20, "01-b")];
    assert_eq!(seen, want.map(|(id, o, s)| (id.to_owned(), o, s.to_owned())));
    // Opening normally is refused until the upgrade finishes; staged files then become
    // the run's lineage and the store is at schema 4.
    assert!(matches!(b.try_open(), Err(Error::LegacyLineage { records: 5 })));
    let staged = LineageFile { kind: LineageKind::Kept, data: Some("objects/a".into()), lineage: "objects/l".into(), index: "objects/i".into(), rows: 2 };
    reg.stage_lineage_files(run, std::slice::from_ref(&staged)).unwrap();
    drop(reg);
    let reg = Registry::open_for_upgrade(b.location()).unwrap();
    assert_eq!(reg.staged_lineage_files().unwrap(), [RecordedLineage { run, file: staged.clone() }], "staged files survive a reopen");
    assert_eq!(reg.finish_upgrade().unwrap(), 5);
    assert!(!reg.needs_upgrade().unwrap());
    assert_eq!(reg.finish_upgrade().unwrap(), 0, "finishing twice changes nothing");
    let reg = b.open();
    assert_eq!(reg.schema_version().unwrap(), 5);
    assert_eq!(reg.lineage_files().unwrap(), [RecordedLineage { run, file: staged }]);
    // The legacy tables and the staging table are gone: creating them again succeeds.
    b.raw("CREATE TABLE upgrade_lineage_files (id BIGINT); CREATE TABLE records (x BIGINT)");
}

fn runs_are_listed_newest_first(b: &mut Backend) {
    let reg = b.open();
    let ids: Vec<RunId> = (0..3).map(|_| start_run(&reg)).collect();
    reg.finish_run(ids[0], RunStatus::Failed).unwrap();
    let listed = reg.runs(2).unwrap();
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[2], ids[1]]);
    assert_eq!(listed[0].status, RunStatus::Running);
    assert_eq!(reg.runs(10).unwrap()[2].status, RunStatus::Failed);
}

fn versions_listing_and_purge(b: &mut Backend) {
    let reg = b.open();
    assert!(matches!(reg.versions("d"), Err(Error::DatasetNotFound(_))));
    commit(&reg, &manifest("d", vec![file("a", "ha", 2)]));
    commit(&reg, &manifest("d", vec![file("a", "ha", 2), file("b", "hb", 1)]));
    let versions = reg.versions("d").unwrap();
    assert_eq!(versions.iter().map(|v| v.reference.version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(reg.referenced_files().unwrap().into_iter().collect::<Vec<_>>(), vec!["a", "b"]);

    let replacement = FileReplacement { old_path: "a".into(), new: file("a2", "ha2", 1) };
    reg.purge_version("d@1", std::slice::from_ref(&replacement), &[]).unwrap();
    assert_eq!(reg.version("d@1").unwrap().files, vec![file("a2", "ha2", 1)]);
    assert_eq!(reg.version("d@2").unwrap().files[0], file("a", "ha", 2));
    reg.purge_version("d@2", &[], &["b".to_owned()]).unwrap();
    assert_eq!(reg.version("d@2").unwrap().files, vec![file("a", "ha", 2)]);
    assert!(matches!(
        reg.purge_version("d@1", &[replacement], &[]),
        Err(Error::InvalidManifest(_))
    ));
}

fn owner(pid: u32) -> RunOwner {
    RunOwner { host: "h1".into(), pid, start: format!("{pid}00") }
}

fn abandoned_runs_resume_under_their_id(b: &mut Backend) {
    let reg = b.open();
    let new = |output| NewRun { pipeline: "web", spec: "s", spec_hash: "h", code_version: "1", owner: Some(owner(7)), output: Some(output) };
    let killed = reg.start_run(&new("/data/out")).unwrap();
    let other = reg.start_run(&new("/data/elsewhere")).unwrap();
    assert_eq!(reg.running_runs().unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), vec![killed, other]);
    assert_eq!(reg.run(killed).unwrap().owner, Some(owner(7)));
    assert_eq!(reg.abandoned_run("web", "h", "/data/out").unwrap(), None, "still running");

    assert!(reg.mark_abandoned(killed).unwrap());
    assert!(!reg.mark_abandoned(killed).unwrap(), "already abandoned");
    assert_eq!(reg.run(killed).unwrap().status, RunStatus::Abandoned);
    assert_eq!(reg.runs(10).unwrap()[1].status, RunStatus::Abandoned);
    assert_eq!(reg.running_runs().unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), vec![other]);
    assert_eq!(reg.abandoned_run("web", "h", "/data/out").unwrap(), Some(killed));
    assert_eq!(reg.abandoned_run("web", "other-spec", "/data/out").unwrap(), None);
    assert_eq!(reg.abandoned_run("web", "h", "/data/elsewhere").unwrap(), None);

    assert!(reg.resume_run(killed, &owner(9)).unwrap());
    assert!(!reg.resume_run(killed, &owner(10)).unwrap(), "taken over once");
    let run = reg.run(killed).unwrap();
    assert_eq!((run.status, run.owner, run.output.as_deref()), (RunStatus::Running, Some(owner(9)), Some("/data/out")));
    reg.finish_run(killed, RunStatus::Succeeded).unwrap();
    assert_eq!(reg.run(killed).unwrap().status, RunStatus::Succeeded);
    assert!(!reg.mark_abandoned(killed).unwrap(), "a finished run is never abandoned");
}

fn gc_sweeps_only_while_no_run_is_running(b: &mut Backend) {
    let reg = b.open();
    for h in ["a", "b"] {
        commit(&reg, &manifest("d", vec![file(&format!("objects/{h}"), h, 1)]));
    }
    reg.cache_insert("k1", "cache/k1", &serde_json::json!({})).unwrap();
    let run = start_run(&reg);
    let policy = GcPolicy { keep_last: 1, cache_grace_ms: -1 };
    let mut calls = 0;
    let report = reg.gc_sweep(&policy, |_| -> Result<()> { calls += 1; Ok(()) }).unwrap();
    assert_eq!(calls, 0, "no sweep while a run is running");
    assert_eq!(report.running, vec![run]);
    assert_eq!(report.versions.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>(), vec![vref("d", 1)], "versions still go");
    assert!(report.cache_entries.is_empty());

    reg.finish_run(run, RunStatus::Failed).unwrap();
    let mut seen = Vec::new();
    let report = reg
        .gc_sweep(&policy, |s| -> Result<()> {
            seen = s.referenced_files.iter().cloned().collect();
            assert_eq!(s.cache_entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), vec!["k1"]);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, vec!["objects/b".to_owned()]);
    assert!(report.running.is_empty());

    // A failing sweep undoes the registry side: the entry is offered again next time.
    reg.cache_insert("k2", "cache/k2", &serde_json::json!({})).unwrap();
    let err = reg.gc_sweep(&policy, |_| Err(Error::Io(std::io::Error::other("disk gone")))).unwrap_err();
    assert_eq!(err.to_string(), "io: disk gone");
    let report = reg.gc_sweep(&policy, |_| -> Result<()> { Ok(()) }).unwrap();
    assert_eq!(report.cache_entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), vec!["k2"]);
}

fn read_only_open_reads_without_migrating(b: &mut Backend) {
    let reg = b.open();
    commit(&reg, &manifest("d", vec![file("a", "h", 1)]));
    drop(reg);
    let ro = Registry::open_read_only(b.location()).unwrap();
    assert_eq!(ro.resolve("d").unwrap(), vref("d", 1));
    assert_eq!(ro.datasets().unwrap().len(), 1);
    if matches!(b, Backend::Sqlite { .. }) {
        let err = ro.tag("d@1", "t").unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
    }
}

#[test]
fn sqlite_read_only_open_of_a_missing_store_creates_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/registry.db");
    let reg = Registry::open_read_only(path.to_str().unwrap()).unwrap();
    assert!(reg.datasets().unwrap().is_empty());
    assert!(path.exists());
}

/// Many connections opening one fresh SQLite file at once all get a migrated store
/// (they used to fail with `database is locked`).
#[test]
fn sqlite_concurrent_fresh_open() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db").to_string_lossy().into_owned();
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        Registry::open(&path).and_then(|r| r.schema_version())
                    })
                })
                .collect();
            for h in handles {
                let v = h.join().unwrap().expect("open succeeds");
                assert!(v >= 3);
            }
        });
    }
}
