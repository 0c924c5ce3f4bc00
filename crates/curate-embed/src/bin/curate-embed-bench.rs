//! Times `Embedder::embed` on a JSONL file of `{"id", "text"}` rows (bench/embed/run.sh).
//!
//! usage: curate-embed-bench MODEL_DIR PARAGRAPHS.jsonl OUT_PREFIX
//!
//! Writes OUT_PREFIX.f32 (the vectors, row-major, input order) and OUT_PREFIX.json (docs/s),
//! and prints the JSON. Threads: RAYON_NUM_THREADS (default: every core).

use std::io::{BufRead, Write};
use std::time::Instant;

use curate_embed::{EmbedOptions, Embedder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, input, out] = args.as_slice() else {
        return Err("usage: curate-embed-bench MODEL_DIR PARAGRAPHS.jsonl OUT_PREFIX".into());
    };
    let t = Instant::now();
    let embedder = Embedder::load(model.as_ref(), &EmbedOptions::default())?;
    let load_seconds = t.elapsed().as_secs_f64();
    let mut texts = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(input)?).lines() {
        let row: serde_json::Value = serde_json::from_str(&line?)?;
        texts.push(row["text"].as_str().unwrap_or_default().to_string());
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = Instant::now();
    let vectors = embedder.embed(&refs)?;
    let seconds = t.elapsed().as_secs_f64();
    let mut f = std::io::BufWriter::new(std::fs::File::create(format!("{out}.f32"))?);
    for v in &vectors {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()?;
    let report = serde_json::json!({
        "library": "curate-embed",
        "kind": embedder.kind(),
        "docs": texts.len(),
        "threads": rayon::current_num_threads(),
        "seconds": seconds,
        "docs_per_s": texts.len() as f64 / seconds,
        "load_seconds": load_seconds,
        "dim": embedder.dim(),
    });
    std::fs::write(format!("{out}.json"), serde_json::to_string_pretty(&report)?)?;
    println!("{report}");
    Ok(())
}
