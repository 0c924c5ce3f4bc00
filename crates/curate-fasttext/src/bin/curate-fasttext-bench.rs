//! Bench harness: predicts the `text` of every line of a JSONL file with a fastText model.
//!
//! `curate-fasttext-bench MODEL IN.jsonl OUT.jsonl K` writes `{"labels", "probs"}` per line
//! (the top K, K = -1 for all labels) and prints `{"texts", "bytes", "seconds",
//! "load_seconds"}`, `seconds` covering prediction only (the best of `PASSES` passes, default 3).
//! `COMPACT=1` loads with `FastText::read_compact`.

use std::error::Error;
use std::io::Write;
use std::time::Instant;

use curate_fasttext::FastText;
use serde_json::Value;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, input, out, k] = &args[..] else {
        return Err("usage: curate-fasttext-bench MODEL IN.jsonl OUT.jsonl K".into());
    };
    let k: i64 = k.parse()?;
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    let passes: usize = std::env::var("PASSES").ok().and_then(|p| p.parse().ok()).unwrap_or(3).max(1);
    let texts: Vec<String> = std::fs::read_to_string(input)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str::<Value>(l).map(|v| v["text"].as_str().unwrap_or_default().to_owned()))
        .collect::<Result<_, _>>()?;

    let start = Instant::now();
    // COMPACT=1 keeps quantized input rows as codes (FastText::read_compact).
    let model = if std::env::var("COMPACT").is_ok_and(|v| v == "1") {
        FastText::read_compact(std::fs::File::open(model)?)?
    } else {
        FastText::load(model.as_ref())?
    };
    let load_seconds = start.elapsed().as_secs_f64();

    let mut predictor = model.predictor();
    let mut results: Vec<Vec<(usize, f32)>> = vec![Vec::new(); texts.len()];
    let mut seconds = f64::INFINITY;
    for _ in 0..passes {
        let start = Instant::now();
        for (text, slot) in texts.iter().zip(results.iter_mut()) {
            slot.clear();
            slot.extend(predictor.predict(text, k, 0.0).iter().map(|p| (p.label, p.prob)));
        }
        seconds = seconds.min(start.elapsed().as_secs_f64());
    }

    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    for preds in &results {
        let line = serde_json::json!({
            "labels": preds.iter().map(|p| model.labels()[p.0].as_str()).collect::<Vec<_>>(),
            "probs": preds.iter().map(|p| f64::from(p.1)).collect::<Vec<_>>(),
        });
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "{}",
        serde_json::json!({ "texts": texts.len(), "bytes": bytes, "seconds": seconds, "load_seconds": load_seconds })
    );
    Ok(())
}
