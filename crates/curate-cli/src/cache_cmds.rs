//! `curate cache`: what the step cache holds, and evicting it down to a budget.

use clap::Subcommand;
use curate_core::cache::{self, EntryInfo};
use curate_datasets::Home;
use serde_json::json;

use crate::registry_cmds::time;

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Entries, bytes, budget, and when the least and most recently used entries were last used.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evict least recently used step outputs until the cache fits the budget; list what went.
    Prune {
        /// The budget, e.g. `500MB` (default: $CURATE_CACHE_MAX, else 10GB).
        #[arg(long, value_parser = crate::parse_size)]
        max_size: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn cache(home: &Home, command: CacheCommand) -> anyhow::Result<()> {
    let steps = home.step_cache();
    match command {
        CacheCommand::Stats { json } => {
            let s = steps.stats(cache::max_size(None)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("{} step output(s), {} of a {} budget", s.entries, size(s.bytes), size(s.max_size));
                if let (Some(oldest), Some(newest)) = (s.oldest_use_ms, s.newest_use_ms) {
                    println!("last used: oldest {}, newest {}", time(oldest as i64), time(newest as i64));
                }
            }
        }
        CacheCommand::Prune { max_size, json } => {
            let budget = match max_size {
                Some(b) => b,
                None => cache::max_size(None)?,
            };
            let gone = steps.prune(budget)?;
            let left = steps.stats(budget)?;
            if json {
                let out = json!({"removed": gone, "entries": left.entries, "bytes": left.bytes, "max_size": budget});
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for e in &gone {
                    println!("removed {}  {}  last used {}", e.key, size(e.bytes), time(e.last_used_ms as i64));
                }
                let freed: u64 = gone.iter().map(|e: &EntryInfo| e.bytes).sum();
                println!(
                    "removed {} step output(s), {}; {} left, {} of a {} budget",
                    gone.len(),
                    size(freed),
                    left.entries,
                    size(left.bytes),
                    size(budget)
                );
            }
        }
    }
    Ok(())
}

/// Bytes in decimal units, as sizes are written in specs (`2GB`).
fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(1_000_000_000_000, "TB"), (1_000_000_000, "GB"), (1_000_000, "MB"), (1_000, "KB")];
    match UNITS.iter().find(|(n, _)| bytes >= *n) {
        Some((n, unit)) => format!("{:.1} {unit}", bytes as f64 / *n as f64),
        None => format!("{bytes} B"),
    }
}
