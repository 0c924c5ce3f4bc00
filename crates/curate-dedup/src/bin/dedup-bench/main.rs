//! Benchmark driver for curate-dedup.
//!
//! * `dedup-bench corpus --docs N --out FILE [--seed S] [--words W]`: seeded corpus (mean W
//!   words per document, default 220, about 2 KB) with
//!   planted near-duplicates, exact duplicates and unrelated documents.
//! * `dedup-bench run --input FILE --output KEPT [--removed TSV] [options]`: full MinHash dedup
//!   of a JSONL file (`{"id","text"}`), writing the kept lines.
//! * `dedup-bench quality --input FILE`: runs the default dedup on a generated corpus and
//!   reports precision and recall against exact Jaccard.

mod corpus;
mod jsonl;
mod quality;
mod run;

use std::process::ExitCode;

/// Value of `--name` parsed as `T`, `default` when absent, an error naming the flag otherwise.
fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args
                .get(i + 1)
                .ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map_err(|_| format!("{name}: cannot parse {v:?}"))
        }
        None => default.ok_or_else(|| format!("missing required {name}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("corpus") => corpus::main(&args[1..]),
        Some("run") => run::main(&args[1..]),
        Some("quality") => quality::main(&args[1..]),
        _ => Err(
            "usage: dedup-bench corpus|run|quality [--flag value]... (see the module docs)"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
