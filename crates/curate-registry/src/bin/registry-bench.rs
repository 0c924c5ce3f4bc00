//! Loads N records of lineage into a fresh registry, then times `explain` on random
//! ids and one `forget` of 1,000 sources. See BENCH.md for figures.
//!
//! Usage: registry-bench [--records N] [--location PATH|postgres://URL] [--samples K]

use std::time::{Duration, Instant};

use curate_registry::{
    Dropped, FileEntry, NewRun, NewVersion, Operator, RecordLineage, RecordMember, Registry, Result,
};

/// Files per dataset version; records are spread round-robin.
const FILES: u64 = 100;
/// Sources handed to the single forget call.
const FORGET_SOURCES: u64 = 1_000;

/// splitmix64: a stateless bijection, so ids look like content hashes yet are recomputable.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn global_id(i: u64) -> String {
    format!("{:016x}", mix(i))
}
fn source_id(i: u64) -> String {
    format!("src-{:016x}", mix(i ^ 0x5555))
}
fn special_id(i: u64) -> String {
    format!("{:016x}", mix(i | (1 << 62)))
}

struct Args {
    records: u64,
    location: String,
    samples: usize,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args { records: 10_000_000, location: "registry-bench.db".into(), samples: 10_000 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--records" => args.records = value.parse().map_err(|e| format!("--records: {e}"))?,
            "--location" => args.location = value,
            "--samples" => args.samples = value.parse().map_err(|e| format!("--samples: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.records < 10 * FORGET_SOURCES {
        return Err(format!("--records must be at least {}", 10 * FORGET_SOURCES));
    }
    Ok(args)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("registry-bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("registry-bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    let reg = Registry::open(&args.location)?;
    // 90% global records from raw sources, 10% specialised records derived from them.
    let global = args.records / 10 * 9;
    let special = args.records - global;
    println!("location {}  records {} (global {global}, specialised {special})", args.location, args.records);

    let run = reg.start_run(&NewRun { pipeline: "bench", spec: "bench", spec_hash: "bench", code_version: "bench", ..Default::default() })?;
    let ops = |names: &[&str]| -> Vec<Operator> {
        names.iter().map(|n| Operator { name: (*n).into(), version: "1".into(), params_hash: format!("p-{n}"), params: serde_json::Value::Null }).collect()
    };
    let chain = reg.register_op_chain(run, "clean", &ops(&["parse", "normalize", "lang-filter"]))?;
    let chain_special = reg.register_op_chain(run, "code", &ops(&["code-detect"]))?;

    let t = Instant::now();
    let inserted = reg.insert_records((0..global).map(|i| RecordLineage {
        record_id: global_id(i),
        source_id: source_id(i),
        source_file: format!("raw/shard-{:04}.jsonl", i % 1000),
        source_offset: i / 1000,
        chain,
        // Every 20th record is dropped.
        dropped: (i % 20 == 0).then(|| Dropped { step: "clean".into(), reason: "too_short".into() }),
    }))?;
    let inserted = inserted
        + reg.insert_records((0..special).map(|j| RecordLineage {
            record_id: special_id(j),
            source_id: global_id(j * 9 + 1),
            source_file: "web@1".into(),
            source_offset: j,
            chain: chain_special,
            dropped: None,
        }))?;
    let load = t.elapsed();
    println!(
        "insert_records: {inserted} records in {:.1} s ({:.0} records/s)",
        load.as_secs_f64(),
        inserted as f64 / load.as_secs_f64()
    );

    let files = |prefix: &str, rows: u64| -> Vec<FileEntry> {
        (0..FILES)
            .map(|f| FileEntry { path: format!("{prefix}/part-{f:03}.parquet"), content_hash: format!("{prefix}{f}"), rows: rows / FILES, bytes: rows })
            .collect()
    };
    let t = Instant::now();
    let web = NewVersion { dataset: "web".into(), files: files("web", global), run: Some(run), ..Default::default() };
    reg.commit_version(
        &web,
        (0..global).filter(|i| i % 20 != 0).map(|i| RecordMember {
            record_id: global_id(i),
            file: format!("web/part-{:03}.parquet", i % FILES),
        }),
    )?;
    let code = NewVersion {
        dataset: "web-code".into(),
        files: files("code", special),
        parents: vec!["web@1".into()],
        run: Some(run),
        ..Default::default()
    };
    reg.commit_version(
        &code,
        (0..special).map(|j| RecordMember { record_id: special_id(j), file: format!("code/part-{:03}.parquet", j % FILES) }),
    )?;
    let commit = t.elapsed();
    println!("commit_version: {} memberships in {:.1} s", global - global / 20 + special, commit.as_secs_f64());

    let mut lat = Vec::with_capacity(args.samples);
    let mut found = 0;
    for k in 0..args.samples as u64 {
        let i = mix(k ^ 0xABCD) % global;
        let t = Instant::now();
        let e = reg.explain(&global_id(i))?;
        lat.push(t.elapsed());
        found += usize::from(e.is_some_and(|e| e.occurrences.iter().any(|o| !o.operators.is_empty())));
    }
    lat.sort();
    println!(
        "explain: {} random ids ({found} found)  p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        args.samples,
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );

    let sources: Vec<String> = (0..FORGET_SOURCES).map(|k| source_id(mix(k ^ 0x1234) % global)).collect();
    let t = Instant::now();
    let plan = reg.forget(&sources, "bench", "bench")?;
    let forget = t.elapsed();
    let summary: Vec<String> = plan.datasets.iter().map(|d| format!("{}: {} excluded", d.dataset, d.exclude.len())).collect();
    println!("forget: {FORGET_SOURCES} sources in {:.1} ms ({})", forget.as_secs_f64() * 1e3, summary.join(", "));
    Ok(())
}
