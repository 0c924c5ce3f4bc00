//! No silent corruption: damaged compressed input, damaged Parquet pages, byte order marks
//! and dictionary-encoded columns, run through the `curate` binary on real files.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use common::*;
use serde_json::Value;

const SPEC: &str = "name: t\ninput:\n  path: in/*\n  id_field: id\nsteps: []\noutput:\n  path: out\n";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A zstd frame with a content checksum, as the `zstd` tool and curate's writer make them.
fn zstd_checked(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(corpus_line).collect()
}

/// The quarantine entries of an output directory.
fn quarantine(out: &Path) -> Vec<Value> {
    let mut q = Vec::new();
    for (path, bytes) in tree(out, &["quarantine"]) {
        assert!(path.to_string_lossy().ends_with(".jsonl"));
        q.extend(String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
    }
    q
}

/// (id, text) of every kept record, in order.
fn kept(out: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = tree(out, &["data"]).into_keys().collect();
    files.sort();
    let batches: Vec<_> = files.iter().flat_map(|f| read_parquet(&out.join(f))).collect();
    strings(&batches, "id").into_iter().zip(strings(&batches, "text")).collect()
}

/// Ids in the data files of the latest committed version of dataset `t`.
fn committed_ids(dir: &Path) -> Vec<String> {
    let v: Value = serde_json::from_str(&curate_ok(dir, &["datasets", "show", "t", "--json"])).unwrap();
    let mut ids: Vec<String> = v[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| strings(&read_parquet(&dir.join(".curate/store").join(f["path"].as_str().unwrap())), "id"))
        .collect();
    ids.sort();
    ids
}

/// (id, text) of corpus lines `range`.
fn originals(range: std::ops::Range<usize>) -> Vec<(String, String)> {
    range
        .map(|i| {
            let v: Value = serde_json::from_str(&corpus_line(i)).unwrap();
            (v["id"].as_str().unwrap().to_string(), v["text"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn corrupt_gzip_member_is_quarantined_not_published() {
    let dir = tempfile::tempdir().unwrap();
    let (first, third) = (gzip(lines(0..2000).as_bytes()), gzip(lines(4000..6000).as_bytes()));
    let middle = gzip(lines(2000..4000).as_bytes());
    let intact: std::collections::HashSet<String> = (2000..4000).map(|i| corpus_line(i).trim_end().to_string()).collect();
    // Flip 16 bytes mid-stream where a plain gzip decoder hands on garbled records (valid
    // JSON, invented content) before it notices: at the CRC, or at an invalid code later.
    let (bad, crc_only) = (middle.len() / 2..middle.len() - 40)
        .find_map(|at| {
            let mut m = middle.clone();
            m[at..at + 16].iter_mut().for_each(|b| *b ^= 0xff);
            let mut out = Vec::new();
            let err = flate2::read::GzDecoder::new(&m[..]).read_to_end(&mut out).err()?;
            let garbled = String::from_utf8_lossy(&out)
                .lines()
                .any(|l| !intact.contains(l) && serde_json::from_str::<Value>(l).is_ok_and(|v| v["id"].is_string()));
            garbled.then(|| (m, err.to_string().contains("checksum")))
        })
        .expect("some 16-byte flip garbles records");
    write(&dir.path().join("in/c.jsonl.gz"), [first, bad, third].concat());
    write(&dir.path().join("p.yaml"), SPEC);
    let stdout = curate_ok(dir.path(), &["run", "p.yaml"]);
    let out = dir.path().join("out");

    // After a bad checksum the third member is read; after bad deflate data nothing more is.
    let after = if crc_only { 4000..6000 } else { 0..0 };
    let expected: Vec<_> = originals(0..2000).into_iter().chain(originals(after.clone())).collect();
    let got = kept(&out);
    let diff = got.iter().zip(&expected).position(|(a, b)| a != b);
    assert!(got == expected, "exactly the records of the intact members are published: {} vs {}, first difference at {diff:?} (crc only: {crc_only})", got.len(), expected.len());
    let mut ids: Vec<String> = expected.iter().map(|r| r.0.clone()).collect();
    ids.sort();
    assert!(committed_ids(dir.path()) == ids, "the committed version holds no garbled record");

    let q = quarantine(&out);
    let (lines, tail) = if crc_only { (&q[..], None) } else { (&q[..q.len() - 1], q.last()) };
    assert!(lines.len() > 500, "{}", lines.len());
    let why = if crc_only { "checksum mismatch" } else { "invalid deflate data" };
    for (i, e) in lines.iter().enumerate() {
        let error = e["error"].as_str().unwrap();
        assert!(error.contains("in/c.jsonl.gz: gzip member 2 (from compressed byte") && error.contains(why), "{error}");
        // Garbled output has its own line breaks; blank lines hold no record.
        let line = e["line"].as_u64().unwrap();
        assert!(line > 2000 && (i == 0 || line > lines[i - 1]["line"].as_u64().unwrap()));
        assert!(e.get("raw").or(e.get("raw_base64")).is_some_and(|r| !r.as_str().unwrap().is_empty()));
    }
    if let Some(tail) = tail {
        assert!(tail["error"].as_str().unwrap().contains("nothing after it can be decompressed"), "{tail}");
    }
    let run = run_json(&out);
    assert_eq!(run["records_in"], expected.len());
    assert_eq!(run["quarantined"].as_u64(), Some(q.len() as u64));
    assert!(stdout.contains(&format!("{} quarantined", q.len())), "{stdout}");
}

#[test]
fn corrupt_zstd_keeps_every_record_before_the_damaged_block() {
    let dir = tempfile::tempdir().unwrap();
    let content = lines(0..20000);
    let frame = zstd_checked(content.as_bytes());
    // Damage a block mid-stream so that it fails to decode; a decoder fed one byte at a time
    // outputs every block before it (what `zstd -dc` recovers).
    let (bad, recoverable) = (frame.len() / 2..frame.len())
        .find_map(|at| {
            let mut f = frame.clone();
            f[at..at + 16].iter_mut().for_each(|b| *b ^= 0xff);
            let mut dec = zstd::stream::raw::Decoder::new().unwrap();
            let mut out = vec![0u8; content.len() + (1 << 20)];
            let mut pos = 0;
            for i in 0..f.len() {
                let mut inb = zstd::stream::raw::InBuffer::around(&f[i..i + 1]);
                let mut outb = zstd::stream::raw::OutBuffer::around(&mut out[pos..]);
                match zstd::stream::raw::Operation::run(&mut dec, &mut inb, &mut outb) {
                    Ok(_) => pos += outb.pos(),
                    Err(e) if !e.to_string().contains("checksum") => return Some((f, out[..pos].to_vec())),
                    Err(_) => return None,
                }
            }
            None
        })
        .expect("some flip breaks a block");
    let complete = recoverable.iter().filter(|&&b| b == b'\n').count();
    assert!(complete > 1000 && complete < 20000);
    write(&dir.path().join("in/c.jsonl.zst"), bad);
    write(&dir.path().join("p.yaml"), SPEC);
    curate_ok(dir.path(), &["run", "p.yaml"]);
    let out = dir.path().join("out");
    assert!(kept(&out) == originals(0..complete), "every record before the damaged block is kept");
    let q = quarantine(&out);
    let last = q.last().unwrap();
    assert!(last["error"].as_str().unwrap().contains("zstd frame 1 (from compressed byte 0): cannot be decoded"), "{last}");
    assert!(last["error"].as_str().unwrap().contains("the rest of the file is not read"), "{last}");
    assert_eq!(q[0]["line"].as_u64(), Some(complete as u64 + 1));
    assert_eq!(run_json(&out)["quarantined"].as_u64(), Some(q.len() as u64));
}

#[test]
fn byte_order_mark_does_not_cost_the_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let content = format!("\u{feff}{}", lines(0..50));
    write(&dir.path().join("in/a.jsonl"), &content);
    write(&dir.path().join("in/b.jsonl.gz"), gzip(content.as_bytes()));
    write(&dir.path().join("in/c.jsonl.zst"), zstd_checked(content.as_bytes()));
    write(&dir.path().join("p.yaml"), SPEC);
    curate_ok(dir.path(), &["run", "p.yaml"]);
    let out = dir.path().join("out");
    assert!(quarantine(&out).is_empty());
    assert_eq!(run_json(&out)["records_out"], 150);
}

/// Writes `batch` as Parquet with zstd pages and row groups of `group_rows`.
fn write_parquet(path: &Path, batch: &arrow_array::RecordBatch, group_rows: usize, dictionary: bool) {
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_dictionary_enabled(dictionary)
        .build();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn parquet_reads(path: &Path) -> bool {
    let f = std::fs::File::open(path).unwrap();
    match parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).and_then(|b| b.build()) {
        Ok(mut r) => r.all(|b| b.is_ok()),
        Err(_) => false,
    }
}

#[test]
fn corrupt_parquet_page_quarantines_its_row_group_and_keeps_the_rest() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, RecordBatch, StringArray};

    let dir = tempfile::tempdir().unwrap();
    let all = originals(0..5000);
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from_iter_values(all.iter().map(|r| r.0.as_str()))) as ArrayRef),
        ("text", Arc::new(StringArray::from_iter_values(all.iter().map(|r| r.1.as_str()))) as ArrayRef),
    ])
    .unwrap();
    let path = dir.path().join("in/p.parquet");
    // Without dictionary pages, the text lives in the data pages.
    write_parquet(&path, &batch, 1000, false);
    let good = std::fs::read(&path).unwrap();
    let meta = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap().metadata().clone();
    let text = meta.row_group(2).column(1);
    let (start, len) = text.byte_range();
    let (start, len) = (start as usize, len as usize);
    // One flipped byte in a data page of row group 2's text column that the reader notices.
    let bad = (start + len / 2..start + len)
        .find_map(|at| {
            let mut b = good.clone();
            b[at] ^= 0xff;
            std::fs::write(&path, &b).unwrap();
            (!parquet_reads(&path)).then_some(b)
        })
        .expect("a flipped byte in a zstd page fails to decode");
    std::fs::write(&path, bad).unwrap();
    write(&dir.path().join("p.yaml"), SPEC);
    let stdout = curate_ok(dir.path(), &["run", "p.yaml"]);
    let out = dir.path().join("out");
    let expected: Vec<_> = all[..2000].iter().chain(&all[3000..]).cloned().collect();
    let mut got = kept(&out);
    got.sort_by_key(|r| r.0[1..].parse::<u64>().unwrap());
    let q = quarantine(&out);
    let diff = got.iter().zip(&expected).find(|(a, b)| a != b);
    assert!(got == expected, "the other row groups are read: {diff:?} {}", q[0]);
    assert_eq!(q.len(), 1000);
    for (i, e) in q.iter().enumerate() {
        assert_eq!(e["row"].as_u64(), Some(2000 + i as u64));
        assert_eq!(e["file"], "in/p.parquet");
        let error = e["error"].as_str().unwrap();
        assert!(error.starts_with("row group 2 (rows 2000..3000) cannot be decoded from row 2000:"), "{error}");
    }
    assert_eq!(run_json(&out)["quarantined"], 1000);
    assert!(stdout.contains("1000 quarantined"), "{stdout}");
}

#[test]
fn dictionary_encoded_parquet_columns_are_read_as_plain_strings() {
    use std::sync::Arc;

    use arrow_array::types::{Int16Type, Int32Type, Int8Type};
    use arrow_array::{ArrayRef, DictionaryArray, RecordBatch};

    let dir = tempfile::tempdir().unwrap();
    let all = originals(0..300);
    let langs = ["en", "fr", "de"];
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(all.iter().map(|r| r.0.as_str()).collect::<DictionaryArray<Int16Type>>()) as ArrayRef),
        ("text", Arc::new(all.iter().map(|r| r.1.as_str()).collect::<DictionaryArray<Int32Type>>()) as ArrayRef),
        ("lang", Arc::new((0..300).map(|i| (i % 7 != 0).then_some(langs[i % 3])).collect::<DictionaryArray<Int8Type>>()) as ArrayRef),
    ])
    .unwrap();
    write_parquet(&dir.path().join("in/d.parquet"), &batch, 100, true);
    write(&dir.path().join("p.yaml"), SPEC);
    curate_ok(dir.path(), &["run", "p.yaml"]);
    let out = dir.path().join("out");
    let mut got = kept(&out);
    got.sort_by_key(|r| r.0[1..].parse::<u64>().unwrap());
    assert!(got == all);
    let data = read_parquet(&out.join("data/part-000000-000.parquet"));
    let lang = data[0].column_by_name("lang").unwrap();
    assert_eq!(lang.data_type().to_string(), "Utf8");
    let lang = arrow_array::cast::AsArray::as_string::<i32>(lang);
    assert_eq!((lang.value(1), lang.value(2), arrow_array::Array::is_null(lang, 0)), ("fr", "de", true));
}

