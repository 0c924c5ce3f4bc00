//! Parity and speed harness against datatrove: reads JSONL `{"id", "text"}` and writes
//! per-filter decisions (or word tokens), or times the filter chain on one core.
//!
//! Usage:
//!   curate-text-parity filters <in.jsonl> <out.jsonl>
//!   curate-text-parity tokens  <in.jsonl> <out.jsonl>
//!   curate-text-parity bench   <in.jsonl> <repeats>

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use curate_text::{c4, fineweb_quality, gopher_quality, gopher_repetition, Decision, Doc};
use serde::{Deserialize, Serialize};

/// The allocator of the `curate` binary, so both measure the same code.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("usage: curate-text-parity (filters|tokens) <in.jsonl> <out.jsonl> | bench <in.jsonl> <repeats>")]
    Usage,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {source}")]
    Json {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("writing output: {0}")]
    Write(#[from] std::io::Error),
    #[error("encoding output: {0}")]
    Encode(#[from] serde_json::Error),
}

#[derive(Deserialize)]
struct InDoc {
    id: serde_json::Value,
    text: String,
}

#[derive(Serialize)]
struct FilterRow<'a> {
    id: &'a serde_json::Value,
    gopher_repetition: Option<String>,
    gopher_quality: Option<String>,
    c4_quality: Option<String>,
    /// The rewritten text when C4 keeps the document.
    c4_quality_text: Option<&'a str>,
    /// C4 with `split_paragraph: false` (spaCy sentences instead of lines).
    c4_quality_sentences: Option<String>,
    /// Its rewritten text when kept.
    c4_quality_sentences_text: Option<&'a str>,
    fineweb_quality: Option<String>,
}

#[derive(Serialize)]
struct TokenRow<'a> {
    id: &'a serde_json::Value,
    words: &'a [&'a str],
}

fn read_docs(path: &PathBuf) -> Result<Vec<InDoc>, Error> {
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let mut docs = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let doc = serde_json::from_str(&line).map_err(|source| Error::Json {
            path: path.clone(),
            line: i + 1,
            source,
        })?;
        docs.push(doc);
    }
    Ok(docs)
}

fn create(path: &PathBuf) -> Result<BufWriter<File>, Error> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })
}

/// The datatrove-style rule name of a decision (without the filter prefix).
fn rule(d: &Decision) -> Option<String> {
    d.reason().map(|r| r.rule.to_string())
}

fn filters(docs: &[InDoc], out: &mut impl Write) -> Result<(), Error> {
    let rp = gopher_repetition::Params::default();
    let qp = gopher_quality::Params::default();
    let cp = c4::Params::default();
    let cp_sent = c4::Params {
        split_paragraph: false,
        ..Default::default()
    };
    let fp = fineweb_quality::Params::default();
    for d in docs {
        let doc = Doc::new(&d.text);
        // The deciding paths, as the chain and the pipeline run them.
        let c4_out = c4::evaluate_to_drop(&doc, &cp);
        let c4_sent = c4::evaluate_to_drop(&doc, &cp_sent);
        let row = FilterRow {
            id: &d.id,
            // The deciding path, which skips what it proves cannot fail (the signals'
            // full path is checked against it in tests/properties.rs).
            gopher_repetition: rule(&gopher_repetition::check(&doc, &rp)),
            gopher_quality: rule(&gopher_quality::evaluate(&doc, &qp).1),
            c4_quality: rule(&c4_out.decision),
            c4_quality_text: c4_out.decision.is_keep().then_some(&*c4_out.text),
            c4_quality_sentences: rule(&c4_sent.decision),
            c4_quality_sentences_text: c4_sent.decision.is_keep().then_some(&*c4_sent.text),
            fineweb_quality: rule(&fineweb_quality::evaluate(&doc, &fp).1),
        };
        serde_json::to_writer(&mut *out, &row)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn tokens(docs: &[InDoc], out: &mut impl Write) -> Result<(), Error> {
    for d in docs {
        let doc = Doc::new(&d.text);
        serde_json::to_writer(
            &mut *out,
            &TokenRow {
                id: &d.id,
                words: doc.words(),
            },
        )?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// GopherRepetition -> GopherQuality -> C4 (no terminal-punctuation rule) -> FineWeb,
/// stopping at the first drop like a datatrove pipeline. Returns the kept count.
fn chain(docs: &[InDoc]) -> usize {
    let rp = gopher_repetition::Params::default();
    let qp = gopher_quality::Params::default();
    let cp = c4::Params {
        filter_no_terminal_punct: false,
        ..Default::default()
    };
    let fp = fineweb_quality::Params::default();
    let mut kept = 0;
    for d in docs {
        let doc = Doc::new(&d.text);
        if !gopher_repetition::check(&doc, &rp).is_keep()
            || !gopher_quality::evaluate(&doc, &qp).1.is_keep()
        {
            continue;
        }
        let c4_out = c4::evaluate_to_drop(&doc, &cp);
        if !c4_out.decision.is_keep() {
            continue;
        }
        // FineWeb sees the rewritten text; reuse the split when C4 changed nothing.
        let keep = if c4_out.text == d.text {
            fineweb_quality::evaluate(&doc, &fp).1.is_keep()
        } else {
            fineweb_quality::evaluate(&Doc::new(&c4_out.text), &fp)
                .1
                .is_keep()
        };
        kept += usize::from(keep);
    }
    kept
}

/// CPU time of this thread from `/proc` (Linux), so a busy shared machine does not
/// count against either side; `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn run() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [mode, input, output] if mode == "filters" || mode == "tokens" => {
            let docs = read_docs(&PathBuf::from(input))?;
            let path = PathBuf::from(output);
            let mut out = create(&path)?;
            if mode == "filters" {
                filters(&docs, &mut out)?;
            } else {
                tokens(&docs, &mut out)?;
            }
            out.flush()?;
        }
        [mode, input, repeats] if mode == "bench" => {
            let repeats: usize = repeats.parse().map_err(|_| Error::Usage)?;
            let docs = read_docs(&PathBuf::from(input))?;
            let mut kept = chain(&docs); // warm-up
            let (start, cpu_start) = (Instant::now(), cpu_seconds());
            for _ in 0..repeats {
                kept = chain(&docs);
            }
            let secs = start.elapsed().as_secs_f64();
            let cpu = cpu_seconds().zip(cpu_start).map(|(b, a)| b - a);
            let n = (docs.len() * repeats.max(1)) as f64;
            println!(
                "{}",
                serde_json::json!({
                    "docs": docs.len(), "repeats": repeats, "kept": kept,
                    "wall_seconds": secs, "docs_per_wall_s": n / secs,
                    "cpu_seconds": cpu, "docs_per_cpu_s": cpu.map(|c| n / c),
                })
            );
        }
        _ => return Err(Error::Usage),
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("curate-text-parity: {e}");
        std::process::exit(1);
    }
}
