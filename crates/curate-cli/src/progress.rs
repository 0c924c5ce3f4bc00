//! Run progress: a bar on a terminal, periodic log lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use curate_core::exec::Progress;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Default)]
struct Counters {
    records: AtomicU64,
    bytes: AtomicU64,
    total: AtomicU64,
    done: AtomicBool,
}

/// Reports records/s, MB/s and ETA while a run proceeds.
pub struct RunProgress {
    bar: Option<ProgressBar>,
    counters: Arc<Counters>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
    interval: Duration,
}

impl RunProgress {
    /// A bar when stderr is a terminal, else log lines every `interval`.
    pub fn new(interval: Duration) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        RunProgress { bar, counters: Arc::default(), ticker: Mutex::new(None), interval }
    }
}

fn rate(n: f64, secs: f64) -> f64 {
    if secs > 0.0 { n / secs } else { 0.0 }
}

impl Progress for RunProgress {
    fn start(&self, tasks: usize, total_bytes: u64, done_bytes: u64) {
        self.counters.total.store(total_bytes, Ordering::Relaxed);
        self.counters.bytes.store(done_bytes, Ordering::Relaxed);
        tracing::info!(tasks, input_mb = total_bytes as f64 / 1e6, "run started");
        if let Some(bar) = &self.bar {
            bar.set_length(total_bytes);
            bar.set_position(done_bytes);
            return;
        }
        let c = self.counters.clone();
        let interval = self.interval;
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let start_bytes = c.bytes.load(Ordering::Relaxed);
            let mut next = started + interval;
            while !c.done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                if Instant::now() < next {
                    continue;
                }
                next += interval;
                let secs = started.elapsed().as_secs_f64();
                let (records, bytes, total) =
                    (c.records.load(Ordering::Relaxed), c.bytes.load(Ordering::Relaxed), c.total.load(Ordering::Relaxed));
                let mbps = rate((bytes - start_bytes) as f64 / 1e6, secs);
                // Before the first batch is done there is no rate to extrapolate from.
                let eta = if mbps > 0.0 { format!("{:.0}s", total.saturating_sub(bytes) as f64 / 1e6 / mbps) } else { "unknown".into() };
                tracing::info!(
                    "progress: {records} records ({:.0}/s), {:.1} of {:.1} MB ({mbps:.1} MB/s), ETA {eta}",
                    rate(records as f64, secs),
                    bytes as f64 / 1e6,
                    total as f64 / 1e6,
                );
            }
        });
        if let Ok(mut t) = self.ticker.lock() {
            *t = Some(handle);
        }
    }

    fn advance(&self, records: u64, bytes: u64) {
        let total = self.counters.records.fetch_add(records, Ordering::Relaxed) + records;
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
            let secs = bar.elapsed().as_secs_f64();
            bar.set_message(format!("{:.0} rec/s", rate(total as f64, secs)));
        }
    }

    fn finish(&self) {
        self.counters.done.store(true, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(t) = self.ticker.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}
