//! Single-thread throughput of `normalize`, `pii_redact` and `word_list_filter` on a JSONL
//! corpus (the `text` field of each line): `textops_bench CORPUS.jsonl`. Run by
//! `bench/textops.sh`, which also makes the corpus.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use curate_core::operator::Operator;
use curate_ops::registry;
use serde_json::{json, Value};

const BATCH_ROWS: usize = 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: textops_bench CORPUS.jsonl")?;
    let texts: Vec<String> = std::fs::read_to_string(&path)?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?.get("text")?.as_str().map(String::from))
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
    let batches = texts
        .chunks(BATCH_ROWS)
        .map(|c| RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from_iter_values(c))]))
        .collect::<Result<Vec<_>, _>>()?;
    let words: Vec<String> = ["lorem", "ipsum dolor", "spam", "casino", "viagra", "click here"].map(String::from).to_vec();
    let ops: [(&str, Value); 4] = [
        ("normalize", json!({})),
        ("pii_redact", json!({})),
        ("pii_redact", json!({"mode": "annotate", "kinds": ["email"]})),
        ("word_list_filter", json!({"words": words, "max_ratio": 0.05})),
    ];
    println!("{} documents, {:.1} MB from {path}", texts.len(), bytes as f64 / 1e6);
    println!("{:<18} {:<40} {:>8} {:>10}", "operator", "params", "seconds", "MB/s");
    for (name, params) in ops {
        let op: Box<dyn Operator> = registry().get(name).ok_or("unregistered")?.build(params.clone(), &Default::default())?;
        let start = Instant::now();
        let mut rows = 0;
        for b in &batches {
            rows += op.process(b.clone())?.batch.num_rows();
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(rows, texts.len());
        println!("{:<18} {:<40} {:>8.3} {:>10.1}", name, params.to_string(), secs, bytes as f64 / 1e6 / secs);
    }
    Ok(())
}
