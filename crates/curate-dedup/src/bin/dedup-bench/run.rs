//! `run`: MinHash dedup of a JSONL file with bounded memory (texts re-read by offset, band
//! buckets grouped through the spill partitioner).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use curate_dedup::minhash::{Decision, DocMeta, LshIndex, MinHashDedup, MinHashParams};
use curate_dedup::{SortKey, SpillConfig};

use crate::arg;
use crate::jsonl::{JsonlCorpus, Line};

/// A finished dedup of one file.
pub struct Outcome {
    /// The corpus, for re-reading lines.
    pub corpus: JsonlCorpus,
    /// One decision per line, in file order.
    pub decisions: Vec<Decision>,
}

/// Parameters from `--ngram --bands --rows --threshold`, defaulting to the library defaults.
fn params(args: &[String]) -> Result<MinHashParams, String> {
    let d = MinHashParams::default();
    Ok(MinHashParams {
        ngram: arg(args, "--ngram", Some(d.ngram))?,
        bands: arg(args, "--bands", Some(d.bands))?,
        rows: arg(args, "--rows", Some(d.rows))?,
        threshold: arg(args, "--threshold", Some(d.threshold))?,
        ..d
    })
}

/// Scans and dedups `--input`, calling `on_line` for every parsed line during the scan.
pub fn dedup(
    args: &[String],
    mut on_line: impl FnMut(usize, &Line<'_>),
) -> Result<Outcome, String> {
    let input: PathBuf = arg(args, "--input", None)?;
    let keep: String = arg(args, "--keep", Some("first".to_owned()))?;
    let longest = match keep.as_str() {
        "first" => false,
        "longest" => true,
        other => return Err(format!("--keep: {other:?} is not first or longest")),
    };
    let params = params(args)?;
    let spill = SpillConfig {
        dir: arg(args, "--spill-dir", Some(std::env::temp_dir()))?,
        partitions: arg(args, "--partitions", Some(64))?,
        memory_limit: arg(args, "--memory-limit", Some(64 << 20))?,
    };
    let dedup = MinHashDedup::new(params.clone(), spill).map_err(|e| e.to_string())?;
    let mut index = match arg::<PathBuf>(args, "--index-in", None) {
        Ok(p) => Some(LshIndex::load(&p, &params).map_err(|e| e.to_string())?),
        Err(_) if arg::<PathBuf>(args, "--index-out", None).is_ok() => {
            Some(LshIndex::new(&params).map_err(|e| e.to_string())?)
        }
        Err(_) => None,
    };

    let t0 = Instant::now();
    let mut docs = Vec::new();
    let corpus = JsonlCorpus::scan(&input, |i, line| {
        let sort_key = if longest {
            SortKey::from_len(line.text.len())
        } else {
            SortKey::FIRST
        };
        docs.push(DocMeta {
            id: line.id(&input, i)?,
            sort_key,
        });
        on_line(i, line);
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    eprintln!(
        "scan: {} docs in {:.2}s",
        docs.len(),
        t0.elapsed().as_secs_f64()
    );

    let t1 = Instant::now();
    let decisions = dedup
        .run(&docs, &corpus, index.as_mut())
        .map_err(|e| e.to_string())?;
    let removed = decisions.iter().filter(|d| !d.kept).count();
    eprintln!(
        "dedup: {removed} of {} removed in {:.2}s",
        decisions.len(),
        t1.elapsed().as_secs_f64()
    );

    if let (Some(ix), Ok(out)) = (&index, arg::<PathBuf>(args, "--index-out", None)) {
        ix.save(&out).map_err(|e| e.to_string())?;
        eprintln!("index: {} records saved to {}", ix.len(), out.display());
    }
    Ok(Outcome { corpus, decisions })
}

fn write_outputs(
    outcome: &Outcome,
    kept_path: &Path,
    removed_path: Option<&Path>,
) -> Result<(), String> {
    let create = |p: &Path| {
        File::create(p)
            .map(|f| BufWriter::with_capacity(1 << 20, f))
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let mut kept = create(kept_path)?;
    for (i, _) in outcome.decisions.iter().enumerate().filter(|(_, d)| d.kept) {
        outcome
            .corpus
            .with_raw(i, |raw| {
                kept.write_all(raw)
                    .and_then(|_| kept.write_all(b"\n"))
                    .map_err(|e| curate_dedup::DedupError::io(kept_path, e))
            })
            .map_err(|e| e.to_string())?;
    }
    kept.flush()
        .map_err(|e| format!("{}: {e}", kept_path.display()))?;
    if let Some(p) = removed_path {
        let mut w = create(p)?;
        let mut write = || -> std::io::Result<()> {
            writeln!(w, "id\tduplicate_of\tjaccard\tcluster_size")?;
            for d in outcome.decisions.iter().filter(|d| !d.kept) {
                writeln!(
                    w,
                    "{}\t{}\t{:.4}\t{}",
                    d.id,
                    d.cluster_id,
                    d.jaccard.unwrap_or(f64::NAN),
                    d.cluster_size
                )?;
            }
            w.flush()
        };
        write().map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

/// `dedup-bench run`.
pub fn main(args: &[String]) -> Result<(), String> {
    let output: PathBuf = arg(args, "--output", None)?;
    let removed: Option<PathBuf> = arg(args, "--removed", None).ok();
    let t = Instant::now();
    let outcome = dedup(args, |_, _| {})?;
    write_outputs(&outcome, &output, removed.as_deref())?;
    eprintln!("total: {:.2}s", t.elapsed().as_secs_f64());
    Ok(())
}
