//! Bench harness: extracts every HTML file named in a list and reports the time spent.
//!
//! `curate-html-extract LIST OUT.jsonl` reads one path per line from LIST, writes
//! `{"path", "text"}` per page to OUT.jsonl and prints `{"pages", "bytes", "seconds",
//! "cpu_seconds"}`, both covering extraction only (files are read before the clock starts);
//! CPU time is what to compare on a loaded machine.

use std::error::Error;
use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, list, out] = &args[..] else {
        return Err("usage: curate-html-extract LIST OUT.jsonl".into());
    };
    let paths: Vec<String> = std::fs::read_to_string(list)?.lines().filter(|l| !l.is_empty()).map(String::from).collect();
    let pages = paths
        .iter()
        .map(|p| Ok(String::from_utf8_lossy(&std::fs::read(p)?).into_owned()))
        .collect::<Result<Vec<String>, std::io::Error>>()?;
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    let texts: Vec<String> = pages.iter().map(|p| curate_html::extract(p)).collect();
    let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    for (path, text) in paths.iter().zip(&texts) {
        serde_json::to_writer(&mut w, &serde_json::json!({ "path": path, "text": text }))?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let bytes: usize = pages.iter().map(String::len).sum();
    println!("{}", serde_json::json!({ "pages": pages.len(), "bytes": bytes, "seconds": seconds, "cpu_seconds": cpu }));
    Ok(())
}

/// CPU time of this (single-threaded) process so far, from Linux's schedstat; 0 elsewhere.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()))
        .map_or(0.0, |ns| ns / 1e9)
}
