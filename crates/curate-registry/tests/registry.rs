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
    file_and_record_diff,
    cache_index_and_gc,
    gc_keeps_parents_of_kept_versions,
    record_index_and_explain,
    forget_reaches_specialised_dataset,
    failed_commit_leaves_nothing,
    panicking_commit_leaves_nothing,
    failing_member_stream_commits_nothing,
    killed_commit_leaves_nothing,
    records_migrate_to_per_chain_lineage,
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

fn member(record_id: &str, file: &str) -> RecordMember {
    RecordMember { record_id: record_id.into(), file: file.into() }
}

fn commit(reg: &Registry, v: &NewVersion) -> VersionRef {
    reg.commit_version(v, Vec::new()).expect("commit")
}

fn vref(dataset: &str, version: i64) -> VersionRef {
    VersionRef { dataset: dataset.into(), version }
}

fn start_run(reg: &Registry) -> RunId {
    reg.start_run(&NewRun { pipeline: "web", spec: "steps: []", spec_hash: "s1", code_version: "0.1.0", ..Default::default() })
        .expect("start run")
}

fn op(name: &str) -> Operator {
    Operator { name: name.into(), version: "1".into(), params_hash: format!("p-{name}"), params: serde_json::json!({"n": 1}) }
}

fn lineage(record: &str, source: &str, chain: OpChainId, dropped: Option<(&str, &str)>) -> RecordLineage {
    RecordLineage {
        record_id: record.into(),
        source_id: source.into(),
        source_file: "raw/part-0.jsonl".into(),
        source_offset: 7,
        chain,
        dropped: dropped.map(|(step, reason)| Dropped { step: step.into(), reason: reason.into() }),
    }
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
                        reg.commit_version(&v, vec![member(&format!("r{t}-{i}"), &path)]).expect("commit").version
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
    assert!(matches!(reg.commit_version(&dup, Vec::new()), Err(Error::InvalidManifest(_))));
    dup.files.pop();
    dup.parents = vec!["missing@1".into()];
    assert!(matches!(reg.commit_version(&dup, Vec::new()), Err(Error::DatasetNotFound(_))));
    assert_eq!(reg.resolve("web").unwrap().version, 1);
}

fn file_and_record_diff(b: &mut Backend) {
    let reg = b.open();
    let v1 = manifest("d", vec![file("a", "ha", 2), file("b", "hb", 1), file("c", "hc", 1)]);
    reg.commit_version(&v1, vec![member("r1", "a"), member("r2", "a"), member("r3", "b"), member("r4", "c")]).unwrap();
    let v2 = manifest("d", vec![file("a", "ha", 2), file("b", "hb2", 1), file("e", "he", 1)]);
    reg.commit_version(&v2, vec![member("r1", "a"), member("r2", "a"), member("r5", "b"), member("r6", "e")]).unwrap();
    let diff = reg.diff("d@1", "d@2").unwrap();
    assert_eq!(diff.added, vec![file("e", "he", 1)]);
    assert_eq!(diff.removed, vec![file("c", "hc", 1)]);
    assert_eq!(diff.changed, vec![(file("b", "hb", 1), file("b", "hb2", 1))]);
    let rec = reg.diff_records("d@1", "d@2").unwrap();
    assert_eq!(rec.added, vec!["r5".to_owned(), "r6".to_owned()]);
    assert_eq!(rec.removed, vec!["r3".to_owned(), "r4".to_owned()]);
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
        reg.commit_version(&v, vec![member(&format!("r{i}"), &format!("f{i}"))]).unwrap();
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
    assert_eq!(reg.explain("r0").unwrap(), None);

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

fn record_index_and_explain(b: &mut Backend) {
    let reg = b.open();
    let run = start_run(&reg);
    let chain = reg.register_op_chain(run, "clean", &[op("normalize"), op("lang-filter")]).unwrap();
    assert_eq!(reg.register_op_chain(run, "clean", &[op("normalize"), op("lang-filter")]).unwrap(), chain);
    let other = reg.register_op_chain(run, "clean", &[op("normalize")]).unwrap();
    assert_ne!(other, chain);

    let mut batch: Vec<RecordLineage> =
        (0..120_000).map(|i| lineage(&format!("rec-{i}"), &format!("src-{i}"), chain, None)).collect();
    batch[5].dropped = Some(Dropped { step: "clean".into(), reason: "too_short".into() });
    // Text needing COPY escaping must round-trip.
    batch[6].source_file = "raw/we\tird\\na\nme.jsonl".into();
    assert_eq!(reg.insert_records(batch.clone()).unwrap(), 120_000);
    // Re-inserting is a no-op that keeps the first lineage.
    batch[1].source_id = "changed".into();
    assert_eq!(reg.insert_records(batch[..10].to_vec()).unwrap(), 0);

    let v = manifest("web", vec![file("part-0", "h", 2)]);
    reg.commit_version(&v, vec![member("rec-1", "part-0"), member("rec-6", "part-0")]).unwrap();
    reg.commit_version(&v, vec![member("rec-1", "part-0")]).unwrap();

    let e = reg.explain("rec-1").unwrap().expect("known record");
    assert_eq!(e.occurrences.len(), 1);
    let o = &e.occurrences[0];
    assert_eq!(o.source_id, "src-1");
    assert_eq!(o.source_file, "raw/part-0.jsonl");
    assert_eq!(o.source_offset, 7);
    assert_eq!(o.run, run);
    assert_eq!(o.step, "clean");
    assert_eq!(o.operators, vec![op("normalize"), op("lang-filter")]);
    assert_eq!(o.dropped, None);
    assert_eq!(e.versions, vec![(vref("web", 1), "part-0".to_owned()), (vref("web", 2), "part-0".to_owned())]);
    assert!(e.derived.is_empty());
    let dropped = reg.explain("rec-5").unwrap().expect("known record");
    assert_eq!(dropped.occurrences[0].dropped, Some(Dropped { step: "clean".into(), reason: "too_short".into() }));
    assert!(dropped.versions.is_empty());
    assert_eq!(reg.explain("rec-6").unwrap().expect("known").occurrences[0].source_file, "raw/we\tird\\na\nme.jsonl");
    assert_eq!(reg.explain("nope").unwrap(), None);

    // A second run over the same records adds a second occurrence instead of being ignored.
    let run2 = start_run(&reg);
    let chain2 = reg.register_op_chain(run2, "clean", &[op("normalize")]).unwrap();
    let again = vec![lineage("rec-1", "src-1", chain2, Some(("clean", "lang")))];
    assert_eq!(reg.insert_records(again).unwrap(), 1);
    let e = reg.explain("rec-1").unwrap().expect("known record");
    assert_eq!(e.occurrences.iter().map(|o| o.run).collect::<Vec<_>>(), vec![run, run2]);
    assert_eq!(e.occurrences[1].dropped, Some(Dropped { step: "clean".into(), reason: "lang".into() }));

    // A record that kept its source's id is found from that id, once, by forget's closure.
    let same = reg.register_op_chain(run2, "keep-id", &[op("normalize")]).unwrap();
    reg.insert_records(vec![lineage("src-9", "src-9", same, None), lineage("rec-9b", "src-9", same, None)]).unwrap();
    let mut ids: Vec<String> = reg.derived_from_source("src-9").unwrap().into_iter().map(|d| d.record_id).collect();
    ids.sort();
    assert_eq!(ids, vec!["rec-9", "rec-9b", "src-9"]);
    let e = reg.explain("src-9").unwrap().expect("known");
    assert_eq!(e.derived.iter().map(|d| d.record_id.as_str()).collect::<Vec<_>>(), vec!["rec-9", "rec-9b"]);

    let derived = reg.derived_from_source("src-1").unwrap();
    assert_eq!(derived.len(), 1);
    assert_eq!(derived[0].record_id, "rec-1");
    assert_eq!(derived[0].versions.len(), 2);
    assert!(reg.derived_from_source("nope").unwrap().is_empty());
}

fn forget_reaches_specialised_dataset(b: &mut Backend) {
    let reg = b.open();
    let run = start_run(&reg);
    let chain = reg.register_op_chain(run, "ingest", &[op("parse")]).unwrap();
    // Global records g0..g9 come from raw sources s0..s9.
    reg.insert_records((0..10).map(|i| lineage(&format!("g{i}"), &format!("s{i}"), chain, None))).unwrap();
    let g = manifest("web", vec![file("web/0", "h0", 5), file("web/1", "h1", 5)]);
    let members = (0..10).map(|i| member(&format!("g{i}"), if i < 5 { "web/0" } else { "web/1" }));
    reg.commit_version(&g, members.collect::<Vec<_>>()).unwrap();
    reg.commit_version(&g, (0..10).map(|i| member(&format!("g{i}"), if i < 5 { "web/0" } else { "web/1" }))).unwrap();

    // The specialised dataset derives new records from global ones (source id = global record id)...
    let chain2 = reg.register_op_chain(run, "code-filter", &[op("code-detect")]).unwrap();
    reg.insert_records((0..4).map(|i| lineage(&format!("c{i}"), &format!("g{i}"), chain2, None))).unwrap();
    let mut s = manifest("web-code", vec![file("code/0", "c0", 4)]);
    s.parents = vec!["web@2".into()];
    reg.commit_version(&s, (0..4).map(|i| member(&format!("c{i}"), "code/0"))).unwrap();
    // ...and another keeps global record ids as they are.
    let mut t = manifest("web-short", vec![file("short/0", "t0", 2)]);
    t.parents = vec!["web@2".into()];
    reg.commit_version(&t, vec![member("g3", "short/0"), member("g7", "short/0")]).unwrap();

    let plan = reg.forget(&["s3".to_owned(), "s9".to_owned()], "GDPR request 42", "alice").unwrap();
    let ex = |d: &DatasetForget| d.exclude.iter().map(|e| (e.record_id.clone(), e.file.clone())).collect::<Vec<_>>();
    let names: Vec<&str> = plan.datasets.iter().map(|d| d.dataset.as_str()).collect();
    assert_eq!(names, vec!["web", "web-code", "web-short"]);
    let web = &plan.datasets[0];
    assert_eq!((web.latest, web.affected_versions.clone()), (2, vec![1, 2]));
    assert_eq!(ex(web), vec![("g3".into(), "web/0".into()), ("g9".into(), "web/1".into())]);
    assert_eq!(ex(&plan.datasets[1]), vec![("c3".into(), "code/0".into())]);
    assert_eq!(ex(&plan.datasets[2]), vec![("g3".into(), "short/0".into())]);

    // The engine rewrites and commits linked to the audit entry.
    let mut rewritten = manifest("web", vec![file("web/0", "h0b", 4), file("web/1", "h1b", 4)]);
    rewritten.forget_audit = Some(plan.audit);
    reg.commit_version(&rewritten, Vec::new()).unwrap();
    let mut code = manifest("web-code", vec![file("code/0", "c0b", 3)]);
    code.forget_audit = Some(plan.audit);
    code.parents = vec!["web@3".into()];
    reg.commit_version(&code, Vec::new()).unwrap();

    let audit = reg.audit(plan.audit).unwrap();
    assert_eq!(audit.actor, "alice");
    assert_eq!(audit.reason, "GDPR request 42");
    assert_eq!(audit.sources, vec!["s3".to_owned(), "s9".to_owned()]);
    assert_eq!(audit.plan, plan.datasets);
    assert_eq!(audit.resulting_versions, vec![vref("web", 3), vref("web-code", 2)]);
    assert!(matches!(reg.audit(plan.audit + 100), Err(Error::AuditNotFound(_))));

    // A later plan sees the rewritten latest versions as clean; older ones still listed.
    let again = reg.forget(&["s3".to_owned()], "re-check", "bob").unwrap();
    assert_ne!(again.audit, plan.audit);
    let web = &again.datasets[0];
    assert_eq!((web.dataset.as_str(), web.latest, web.exclude.len()), ("web", 3, 0));

    // Unknown ids: named, left out of the audit; alone, an error and no audit entry.
    let partial = reg.forget(&["s3".to_owned(), "nope-1".to_owned(), "s3".to_owned()], "typo", "bob").unwrap();
    assert_eq!(partial.unknown, vec!["nope-1".to_owned()]);
    assert_eq!(reg.audit(partial.audit).unwrap().sources, vec!["s3".to_owned()], "known, deduplicated");
    match reg.forget(&["nope-1".to_owned(), "nope-2".to_owned()], "none", "bob") {
        Err(Error::UnknownSources(ids)) => assert_eq!(ids, vec!["nope-1".to_owned(), "nope-2".to_owned()]),
        other => panic!("expected UnknownSources, got {other:?}"),
    }
    assert!(matches!(reg.audit(partial.audit + 1), Err(Error::AuditNotFound(_))), "no audit entry for an all-unknown request");

    // explain names the requests that reached a record, and the versions that left it out.
    let e = reg.explain("c3").unwrap().expect("known");
    let notes: Vec<(AuditId, &str, &str, Vec<VersionRef>)> =
        e.forgets.iter().map(|n| (n.audit, n.actor.as_str(), n.source_id.as_str(), n.without.clone())).collect();
    assert_eq!(
        notes,
        vec![
            (plan.audit, "alice", "s3", vec![vref("web", 3), vref("web-code", 2)]),
            (again.audit, "bob", "s3", vec![]),
            (partial.audit, "bob", "s3", vec![]),
        ]
    );
    assert_eq!(e.forgets[0].reason, "GDPR request 42");
    assert!(reg.explain("c0").unwrap().expect("known").forgets.is_empty());
}

fn failed_commit_leaves_nothing(b: &mut Backend) {
    let reg = b.open();
    let v = manifest("d", vec![file("a", "h", 1)]);
    // The bad member is detected mid-stream, after the version row was written.
    let members = (0..50_000).map(|i| member(&format!("r{i}"), if i == 45_000 { "zzz" } else { "a" }));
    assert!(matches!(reg.commit_version(&v, members), Err(Error::InvalidManifest(_))));
    assert!(matches!(reg.resolve("d"), Err(Error::DatasetNotFound(_))));
    assert!(reg.datasets().unwrap().is_empty());
    // The handle is still usable and numbering was not consumed.
    assert_eq!(reg.commit_version(&v, vec![member("r1", "a")]).unwrap(), vref("d", 1));
    assert_eq!(reg.diff_records("d@1", "d@1").unwrap(), RecordDiff::default());
    let fresh = b.open();
    assert_eq!(fresh.resolve("d").unwrap(), vref("d", 1));
}

fn panicking_commit_leaves_nothing(b: &mut Backend) {
    let reg = b.open();
    commit(&reg, &manifest("d", vec![file("a", "h", 1)]));
    let v = manifest("d", vec![file("a", "h2", 1)]);
    // A crash in the middle of streaming members (the engine dying mid-commit).
    let members = (0..30_000).map(|i| {
        assert!(i < 25_000, "engine crashed");
        member(&format!("r{i}"), "a")
    });
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reg.commit_version(&v, members)));
    assert!(crashed.is_err());
    assert_eq!(reg.resolve("d").unwrap(), vref("d", 1));
    assert!(matches!(reg.resolve("d@2"), Err(Error::VersionNotFound(_))));
    assert_eq!(reg.commit_version(&v, vec![member("r1", "a")]).unwrap(), vref("d", 2));
    assert_eq!(reg.diff_records("d@1", "d@2").unwrap().added, vec!["r1".to_owned()]);
}

fn failing_member_stream_commits_nothing(b: &mut Backend) {
    let reg = b.open();
    commit(&reg, &manifest("d", vec![file("a", "h", 1)]));
    let v = manifest("d", vec![file("a", "h2", 1)]);
    // A data file that cannot be read back after 25,000 members were streamed.
    #[derive(Debug, PartialEq)]
    struct Unreadable(String);
    impl From<Error> for Unreadable {
        fn from(e: Error) -> Self {
            Unreadable(e.to_string())
        }
    }
    let members =
        (0..30_000).map(|i| if i < 25_000 { Ok(member(&format!("r{i}"), "a")) } else { Err(Unreadable("part-1".into())) });
    assert_eq!(reg.try_commit_version(&v, members), Err(Unreadable("part-1".into())));
    assert_eq!(reg.resolve("d").unwrap(), vref("d", 1));
    assert!(matches!(reg.resolve("d@2"), Err(Error::VersionNotFound(_))));
    let ok = (0..3).map(|i| Ok::<_, Error>(member(&format!("r{i}"), "a")));
    assert_eq!(reg.try_commit_version(&v, ok).unwrap(), vref("d", 2));
    assert_eq!(reg.diff_records("d@1", "d@2").unwrap().added.len(), 3);
}

/// Env var through which `killed_commit_leaves_nothing` hands its store to the child.
const CRASH_ENV: &str = "CURATE_REGISTRY_CRASH_CHILD";

fn killed_commit_leaves_nothing(b: &mut Backend) {
    let reg = b.open();
    commit(&reg, &manifest("d", vec![file("a", "h", 1)]));
    let exe = std::env::current_exe().expect("test binary path");
    let status = std::process::Command::new(exe)
        .args(["--ignored", "--exact", "crash_child", "--nocapture"])
        .env(CRASH_ENV, b.location())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("spawn child");
    // SIGABRT, not a panic exit: the child got as far as streaming and died there.
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(6), "child exit: {status:?}");
    let fresh = b.open();
    assert_eq!(fresh.resolve("d").unwrap(), vref("d", 1));
    assert!(matches!(fresh.resolve("d@2"), Err(Error::VersionNotFound(_))));
    assert_eq!(commit(&fresh, &manifest("d", vec![file("b", "h", 1)])), vref("d", 2));
    assert_eq!(fresh.version("d@2").unwrap().files, vec![file("b", "h", 1)]);
}

/// Child process of `killed_commit_leaves_nothing`: aborts (no unwinding, no
/// rollback) while streaming a commit's records.
#[test]
#[ignore = "run only as the child process of killed_commit_leaves_nothing"]
fn crash_child() {
    let location = std::env::var(CRASH_ENV).expect("set by killed_commit_leaves_nothing");
    let reg = Registry::open(&location).expect("open");
    let v = manifest("d", vec![file("a", "h2", 1)]);
    let members = (0..50_000).map(|i| {
        if i == 40_000 {
            std::process::abort();
        }
        member(&format!("r{i}"), "a")
    });
    let _ = reg.commit_version(&v, members);
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

fn records_migrate_to_per_chain_lineage(b: &mut Backend) {
    let reg = b.open();
    let run = start_run(&reg);
    let chain = reg.register_op_chain(run, "clean", &[op("normalize")]).unwrap();
    drop(reg);
    // Rebuild the store as migration 1 left it, with one lineage row, then reopen.
    b.raw(
        "DROP TABLE records; \
         CREATE TABLE records (record_id TEXT PRIMARY KEY, source_id TEXT NOT NULL, source_file_id BIGINT NOT NULL, \
         source_offset BIGINT NOT NULL, chain_id BIGINT NOT NULL, drop_step TEXT, drop_reason TEXT); \
         CREATE INDEX records_source ON records (source_id); \
         INSERT INTO source_files (path) VALUES ('raw/old.jsonl'); \
         ALTER TABLE runs DROP COLUMN host; ALTER TABLE runs DROP COLUMN pid; ALTER TABLE runs DROP COLUMN pid_start; \
         ALTER TABLE runs DROP COLUMN output; ALTER TABLE runs DROP COLUMN abandoned_at; \
         DELETE FROM schema_migrations WHERE version > 1",
    );
    b.raw(&format!(
        "INSERT INTO records VALUES ('old-1', 'src-old', (SELECT id FROM source_files WHERE path = 'raw/old.jsonl'), 3, {}, NULL, NULL)",
        chain.0
    ));
    let reg = b.open();
    assert_eq!(reg.schema_version().unwrap(), 3);
    let e = reg.explain("old-1").unwrap().expect("carried over");
    assert_eq!((e.occurrences[0].source_id.as_str(), e.occurrences[0].source_offset), ("src-old", 3));
    let chain2 = reg.register_op_chain(run, "clean", &[op("other")]).unwrap();
    assert_eq!(reg.insert_records(vec![lineage("old-1", "src-old", chain2, None)]).unwrap(), 1);
    assert_eq!(reg.explain("old-1").unwrap().expect("known").occurrences.len(), 2);
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
    reg.commit_version(&manifest("d", vec![file("a", "ha", 2)]), vec![member("r1", "a"), member("r2", "a")]).unwrap();
    reg.commit_version(&manifest("d", vec![file("a", "ha", 2), file("b", "hb", 1)]), vec![member("r1", "a"), member("r2", "a"), member("r3", "b")]).unwrap();
    let versions = reg.versions("d").unwrap();
    assert_eq!(versions.iter().map(|v| v.reference.version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(reg.referenced_files().unwrap().into_iter().collect::<Vec<_>>(), vec!["a", "b"]);

    let replacement = FileReplacement { old_path: "a".into(), new: file("a2", "ha2", 1) };
    reg.purge_version("d@1", std::slice::from_ref(&replacement), &["r2".to_owned()]).unwrap();
    assert_eq!(reg.version("d@1").unwrap().files, vec![file("a2", "ha2", 1)]);
    assert_eq!(reg.version("d@2").unwrap().files[0], file("a", "ha", 2));
    assert_eq!(reg.diff_records("d@1", "d@2").unwrap().added, vec!["r2", "r3"]);
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
