//! Arbitrary bytes through the JSONL reader (`FileSource` on a real file) as plain, gzip and
//! zstd input. Besides never panicking and never failing on data, the invariants are:
//!
//! * plain: every non-blank line is a record or a quarantine entry, and byte-range shards of
//!   any size read exactly what the whole file reads;
//! * intact gzip/zstd of the same bytes read exactly like plain;
//! * damaged gzip/zstd (a flipped byte or a truncation) read like plain up to the first line
//!   quarantined for damage, and from there on only quarantine entries for damage follow:
//!   nothing garbled is published, nothing before the damage is lost;
//! * arbitrary bytes named `.gz`/`.zst` that a reference decoder (flate2, zstd) decodes read
//!   like plain reading of that decoded output.
//!
//! The first input byte picks the case, the next four parametrise it (damage position, flip
//! mask, shard size), the rest is the payload.
#![no_main]

use std::io::{Read, Write};
use std::path::Path;
use std::sync::OnceLock;

use arrow_array::cast::AsArray;
use arrow_array::Array;
use curate_core::io::Source;
use curate_core::spec::{ByteSize, InputFormat, InputSpec, Paths};
use curate_io::FileSource;
use libfuzzer_sys::fuzz_target;

/// What a reading produced: (line, text) of records where known, and quarantine entries
/// as (line, error, raw).
#[derive(Debug, PartialEq)]
struct Outcome {
    texts: Vec<String>,
    offsets: Vec<Option<u64>>,
    quarantined: Vec<(u64, String, Vec<u8>)>,
}

fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory")).path()
}

fn read(name: &str, bytes: &[u8], split: u64) -> Outcome {
    let path = dir().join(name);
    std::fs::write(&path, bytes).expect("the fuzz input is written");
    let spec = InputSpec {
        path: Paths::One(path.display().to_string()),
        format: Some(InputFormat::Jsonl),
        id_field: None,
        text_field: "text".into(),
        split_size: ByteSize(split),
        sample_records: 100,
        dataset: None,
        on_duplicate_id: Default::default(),
    };
    let src = FileSource::open(&spec).expect("an existing file opens");
    let mut out = Outcome { texts: Vec::new(), offsets: Vec::new(), quarantined: Vec::new() };
    for shard in src.shards() {
        for chunk in src.read(shard).expect("a shard opens") {
            let chunk = chunk.expect("bad data is quarantined, never an error");
            let text = chunk.batch.column_by_name("text").expect("text column").as_string::<i32>();
            let source = chunk.batch.column_by_name("_source").expect("_source column").as_struct();
            let offsets = source.column(1).as_primitive::<arrow_array::types::UInt64Type>();
            for i in 0..text.len() {
                out.texts.push(text.value(i).to_string());
                out.offsets.push(offsets.is_valid(i).then(|| offsets.value(i)));
            }
            for q in chunk.quarantined {
                assert!(!q.error.is_empty());
                out.quarantined.push((q.line.expect("JSONL entries have a line"), q.error, q.raw));
            }
        }
    }
    out
}

/// Non-blank lines as the reader sees them (a leading byte order mark is no content).
fn content_lines(bytes: &[u8]) -> usize {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    bytes.split(|&b| b == b'\n').filter(|l| l.iter().any(|b| !matches!(b, b' ' | b'\t' | b'\r'))).count()
}

/// Whether a quarantine entry is there for damaged compressed input.
fn for_damage(error: &str) -> bool {
    error.starts_with("record decoded from damaged input") || error.ends_with("(the rest of the file is not read)")
}

/// Reads `payload` as plain JSONL and checks the plain invariants; returns the reading with
/// each record's line number.
fn plain(payload: &[u8], split: u64) -> (Outcome, Vec<u64>) {
    let whole = read("p.jsonl", payload, 1 << 40);
    assert_eq!(whole.texts.len() + whole.quarantined.len(), content_lines(payload), "every line is accounted for");
    let parts = read("p.jsonl", payload, split);
    assert_eq!(parts, whole, "byte-range shards of {split} bytes read like the whole file");
    let lines = whole
        .offsets
        .iter()
        .map(|o| {
            let o = o.expect("plain records have offsets") as usize;
            payload[..o].iter().filter(|&&b| b == b'\n').count() as u64 + 1
        })
        .collect();
    (whole, lines)
}

/// Compressed readings carry no byte offsets; the rest must match.
fn same_as_plain(compressed: &Outcome, plain: &Outcome) -> bool {
    compressed.texts == plain.texts && compressed.quarantined == plain.quarantined
}

/// A damaged reading matches the plain one before its first damage entry and holds only
/// damage entries from there.
fn check_damaged(r: &Outcome, whole: &Outcome, lines: &[u64]) {
    let Some(first) = r.quarantined.iter().find(|q| for_damage(&q.1)) else {
        // Damage a decoder cannot see (a gzip header's time stamp) changes nothing.
        assert!(same_as_plain(r, whole), "undamaged reading differs from plain");
        return;
    };
    let cut = first.0;
    let kept = lines.iter().take_while(|&&l| l < cut).count();
    assert_eq!(r.texts, whole.texts[..kept], "exactly the records before line {cut} are published");
    // Up to the last published record the input was verified, so its entries are plain's.
    // After it the damaged unit may already have begun: its garbled lines are reported as
    // damage (or not at all when blank), so only a prefix of plain's entries may appear.
    let last = if kept > 0 { lines[kept - 1] } else { 0 };
    let before: Vec<_> = whole.quarantined.iter().filter(|q| q.0 < cut).collect();
    let split = r.quarantined.iter().position(|q| for_damage(&q.1)).unwrap_or(r.quarantined.len());
    let (r_before, r_after) = r.quarantined.split_at(split);
    let certain = before.iter().filter(|q| q.0 < last).count();
    assert!(
        r_before.len() >= certain && r_before.len() <= before.len() && r_before.iter().eq(before[..r_before.len()].iter().copied()),
        "entries before line {cut} match plain reading: {r_before:?} vs {before:?}"
    );
    assert!(r_after.iter().all(|q| for_damage(&q.1)), "only damage entries from line {cut}");
    assert!(r_after.windows(2).all(|w| w[0].0 < w[1].0), "in line order");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("in-memory gzip");
    e.finish().expect("in-memory gzip")
}

fn zstd_checked(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::stream::Encoder::new(Vec::new(), 1).expect("zstd encoder");
    e.include_checksum(true).expect("checksum flag");
    e.write_all(data).expect("in-memory zstd");
    e.finish().expect("in-memory zstd")
}

fuzz_target!(|data: &[u8]| {
    let Some((&case, rest)) = data.split_first() else { return };
    let Some((param, payload)) = rest.split_first_chunk::<4>() else { return };
    let at = u16::from_le_bytes([param[0], param[1]]) as usize;
    let split = 1 + param[3] as u64;
    match case % 3 {
        0 => {
            plain(payload, split);
        }
        1 => {
            let (whole, lines) = plain(payload, split);
            for (name, encoded) in [("c.jsonl.gz", gzip(payload)), ("c.jsonl.zst", zstd_checked(payload))] {
                assert!(same_as_plain(&read(name, &encoded, split), &whole), "{name}: intact input reads like plain");
                let mut damaged = encoded.clone();
                let at = at % damaged.len();
                if param[2] == 0 {
                    damaged.truncate(at);
                } else {
                    damaged[at] ^= param[2];
                }
                let r = read(name, &damaged, split);
                if damaged.is_empty() {
                    // An empty file is an empty stream: there is nothing to lose.
                    assert!(r.texts.is_empty() && r.quarantined.is_empty());
                } else {
                    check_damaged(&r, &whole, &lines);
                }
            }
        }
        _ => {
            let mut gz = Vec::new();
            let gz = flate2::read::MultiGzDecoder::new(payload).read_to_end(&mut gz).ok().map(|_| gz);
            let zst = zstd::stream::decode_all(payload).ok();
            for (name, reference) in [("r.jsonl.gz", gz), ("r.jsonl.zst", zst)] {
                let r = read(name, payload, split);
                if let Some(decoded) = reference {
                    let (whole, lines) = plain(&decoded, split);
                    check_damaged(&r, &whole, &lines);
                }
            }
        }
    }
});
