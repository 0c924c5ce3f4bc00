//! Bench harness: detects the language of every `{"lang", "text"}` line of a JSONL file.
//!
//! `curate-lang-eval IN.jsonl OUT.jsonl` writes `{"lang", "pred", "score"}` per line
//! (`pred` null when nothing was detected) and prints `{"texts", "bytes", "seconds"}`, the
//! seconds covering detection only.

use std::error::Error;
use std::io::Write;
use std::time::Instant;

use serde_json::Value;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, out] = &args[..] else {
        return Err("usage: curate-lang-eval IN.jsonl OUT.jsonl".into());
    };
    let rows = std::fs::read_to_string(input)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<Value>, _>>()?;
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap_or_default()).collect();
    let start = Instant::now();
    let found: Vec<Option<curate_lang::Detection>> = texts.iter().map(|t| curate_lang::detect(t)).collect();
    let seconds = start.elapsed().as_secs_f64();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    for (row, d) in rows.iter().zip(&found) {
        let line = serde_json::json!({
            "lang": row["lang"],
            "pred": d.map(|d| d.lang),
            "score": d.map(|d| d.score),
        });
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    println!("{}", serde_json::json!({ "texts": texts.len(), "bytes": bytes, "seconds": seconds }));
    Ok(())
}
