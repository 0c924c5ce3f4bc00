//! Benchmark floor: read, decompress and parse every shard of an input into Arrow batches,
//! with N threads, and nothing else. `bench/engine.sh` compares a pipeline run against it.
//!
//! Usage: read_only <glob> <threads>

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use curate_core::io::Source;
use curate_core::spec::{ByteSize, InputSpec, Paths};
use curate_io::FileSource;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(glob), Some(threads)) = (args.get(1), args.get(2)) else {
        return Err("usage: read_only <glob> <threads>".into());
    };
    let threads: usize = threads.parse()?;
    let spec = InputSpec {
        path: Paths::One(glob.clone()),
        format: None,
        id_field: None,
        text_field: "text".into(),
        split_size: ByteSize(64_000_000),
        sample_records: 1000,
        on_duplicate_id: Default::default(),
        dataset: None,
    };
    let started = Instant::now();
    let src = FileSource::open(&spec)?;
    let next = AtomicUsize::new(0);
    let (records, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(shard) = src.shards().get(next.fetch_add(1, Ordering::Relaxed)) {
                    for chunk in src.read(shard).expect("shard opens") {
                        let chunk = chunk.expect("shard reads");
                        records.fetch_add(chunk.batch.num_rows() as u64, Ordering::Relaxed);
                        bytes.fetch_add(chunk.bytes, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"records\": {}, \"bytes\": {}, \"seconds\": {secs:.3}}}",
        records.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed)
    );
    Ok(())
}
