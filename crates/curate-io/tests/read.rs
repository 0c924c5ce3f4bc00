//! Reading JSONL and Parquet inputs: sharding, compression, quarantine, schema inference.

use std::io::Write;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use curate_core::io::{Quarantined, Source};
use curate_core::spec::{ByteSize, InputSpec, Paths};
use curate_io::FileSource;

fn input(path: &Path, split: u64, id_field: Option<&str>) -> InputSpec {
    InputSpec {
        path: Paths::One(path.display().to_string()),
        format: None,
        id_field: id_field.map(str::to_string),
        text_field: "text".into(),
        split_size: ByteSize(split),
        sample_records: 1000,
        dataset: None,
        on_duplicate_id: Default::default(),
    }
}

/// (id, text) of every record, and every quarantined record, over all shards in order.
fn read_all(src: &FileSource) -> (Vec<(String, String)>, Vec<Quarantined>, Vec<RecordBatch>) {
    let mut recs = Vec::new();
    let mut quarantined = Vec::new();
    let mut batches = Vec::new();
    for shard in src.shards() {
        for chunk in src.read(shard).unwrap() {
            let chunk = chunk.unwrap();
            let ids = chunk.batch.column_by_name("id").unwrap().as_string::<i32>().clone();
            let text = chunk.batch.column_by_name("text").unwrap().as_string::<i32>().clone();
            for i in 0..ids.len() {
                recs.push((ids.value(i).to_string(), text.value(i).to_string()));
            }
            quarantined.extend(chunk.quarantined);
            batches.push(chunk.batch);
        }
    }
    (recs, quarantined, batches)
}

/// A tiny deterministic generator, so the property runs are reproducible.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn random_jsonl(seed: u64, lines: usize) -> (String, Vec<String>, Vec<usize>) {
    let mut rng = Lcg(seed);
    let alphabet = ["a", "b", "é", "字", " ", "\\n", "\\\"", "🙂", "x"];
    let mut out = String::new();
    let mut texts = Vec::new();
    let mut bad_lines = Vec::new();
    for line in 1..=lines {
        match rng.next() % 10 {
            0 => out.push('\n'),
            1 => {
                out.push_str("{\"text\": \"broken\n");
                bad_lines.push(line);
            }
            _ => {
                let len = (rng.next() % 60) as usize;
                let text: String = (0..len).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect();
                out.push_str(&format!("{{\"n\": {line}, \"text\": \"{text}\"}}\n"));
                texts.push(serde_json::from_str::<String>(&format!("\"{text}\"")).unwrap());
            }
        }
    }
    (out, texts, bad_lines)
}

#[test]
fn byte_range_shards_read_every_record_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    for seed in 0..8 {
        let (content, texts, bad_lines) = random_jsonl(seed, 300);
        let path = dir.path().join(format!("r{seed}.jsonl"));
        std::fs::write(&path, &content).unwrap();
        let (whole, q_whole, _) = read_all(&FileSource::open(&input(&path, 1 << 30, None)).unwrap());
        assert_eq!(whole.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>(), texts, "seed {seed}");
        assert_eq!(q_whole.iter().map(|q| q.line.unwrap() as usize).collect::<Vec<_>>(), bad_lines);
        let mut rng = Lcg(seed + 100);
        for _ in 0..6 {
            let split = 1 + rng.next() % 700;
            let src = FileSource::open(&input(&path, split, None)).unwrap();
            assert!(src.shards().len() > 1 || content.len() as u64 <= split);
            let (parts, q_parts, _) = read_all(&src);
            assert_eq!(parts, whole, "seed {seed} split {split}");
            assert_eq!(q_parts, q_whole, "seed {seed} split {split}: quarantine differs");
        }
    }
}

#[test]
fn derived_ids_name_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    std::fs::write(&path, "{\"text\":\"one\"}\n\n{\"text\":\"two\"}\n").unwrap();
    let (recs, _, _) = read_all(&FileSource::open(&input(&path, 1 << 20, None)).unwrap());
    let f = path.display().to_string();
    assert_eq!(recs, vec![(format!("{f}@0"), "one".into()), (format!("{f}@16"), "two".into())]);
}

#[test]
fn compressed_inputs_read_like_plain() {
    let dir = tempfile::tempdir().unwrap();
    let (content, texts, _) = random_jsonl(42, 200);
    let gz = dir.path().join("x.jsonl.gz");
    std::fs::write(&gz, gzip(content.as_bytes())).unwrap();
    let zst = dir.path().join("x.jsonl.zst");
    std::fs::write(&zst, zstd::encode_all(content.as_bytes(), 3).unwrap()).unwrap();
    for p in [&gz, &zst] {
        // Compressed files are never split, whatever the split size.
        let src = FileSource::open(&input(p, 10, None)).unwrap();
        assert_eq!(src.shards().len(), 1);
        let (recs, q, _) = read_all(&src);
        assert_eq!(recs.into_iter().map(|r| r.1).collect::<Vec<_>>(), texts);
        assert!(q.iter().all(|q| q.byte_offset.is_none() && q.line.is_some()));
    }
}

fn corpus(n: usize) -> String {
    (0..n).map(|i| format!("{{\"text\": \"record number {i} with some words to compress\"}}\n")).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn zstd_checked(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn truncated_gzip_quarantines_the_unverified_member_with_raw_lines() {
    let dir = tempfile::tempdir().unwrap();
    let content = corpus(5000);
    let bytes = gzip(content.as_bytes());
    let path = dir.path().join("t.jsonl.gz");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let (recs, q, _) = read_all(&FileSource::open(&input(&path, 1 << 20, None)).unwrap());
    assert!(recs.is_empty(), "a member whose checksum was never seen publishes nothing");
    let (tail, lines) = q.split_last().unwrap();
    assert!(lines.len() > 100 && lines.len() < 5000);
    for (i, q) in lines.iter().enumerate() {
        assert_eq!(q.line, Some(i as u64 + 1));
        assert!(q.error.contains("t.jsonl.gz: gzip member 1 (from compressed byte 0): truncated"), "{}", q.error);
        // Raw bytes are kept; the last line is cut where the file ends.
        let original = content.lines().nth(i).unwrap().as_bytes();
        assert!(if i + 1 < lines.len() { q.raw == original } else { original.starts_with(&q.raw) });
    }
    assert!(tail.error.contains("the rest of the file is not read") && tail.raw.is_empty(), "{}", tail.error);
}

#[test]
fn truncated_zstd_keeps_the_blocks_before_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let content = corpus(20000);
    let bytes = zstd_checked(content.as_bytes());
    let path = dir.path().join("t.jsonl.zst");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let (recs, q, _) = read_all(&FileSource::open(&input(&path, 1 << 20, None)).unwrap());
    assert!(recs.len() > 1000 && recs.len() < 20000, "{}", recs.len());
    for (i, (_, text)) in recs.iter().enumerate() {
        assert_eq!(text, &format!("record number {i} with some words to compress"));
    }
    let last = q.last().unwrap();
    assert!(last.error.contains("zstd frame 1") && last.error.contains("truncated"), "{}", last.error);
    assert_eq!(q[0].line, Some(recs.len() as u64 + 1));
}

#[test]
fn byte_order_mark_is_skipped_at_the_start_of_the_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let content = "\u{feff}{\"text\": \"first\", \"n\": 1}\n{\"text\": \"second\", \"n\": 2}\n\u{feff}{\"text\": \"third\"}\n";
    let plain = dir.path().join("bom.jsonl");
    std::fs::write(&plain, content).unwrap();
    let gz = dir.path().join("bom.jsonl.gz");
    std::fs::write(&gz, gzip(content.as_bytes())).unwrap();
    let zst = dir.path().join("bom.jsonl.zst");
    std::fs::write(&zst, zstd_checked(content.as_bytes())).unwrap();
    for (path, split) in [(&plain, 1 << 20), (&plain, 20), (&gz, 1 << 20), (&zst, 1 << 20)] {
        let src = FileSource::open(&input(path, split, None)).unwrap();
        assert!(src.column_names().contains(&"n".to_string()), "the first line shapes the schema");
        let (recs, q, _) = read_all(&src);
        let texts: Vec<&str> = recs.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(texts, ["first", "second"], "{} split {split}", path.display());
        assert_eq!(recs[0].0, format!("{}@0", path.display()));
        // A BOM anywhere else is not an encoding marker but bad data.
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].line, Some(3));
        assert!(q[0].error.starts_with("invalid JSON"), "{}", q[0].error);
    }
}

#[test]
fn bad_records_are_quarantined_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.jsonl");
    let mut bytes = b"{\"id\":\"a\",\"text\":\"ok\"}\n[1,2]\n{\"id\":\"b\",\"text\":5}\n{\"text\":\"no id\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"id\":\"c\",\"text\":\"bad \xff utf8\"}\n{\"id\":7,\"text\":\"int id\"}\n");
    std::fs::write(&path, &bytes).unwrap();
    let (recs, q, _) = read_all(&FileSource::open(&input(&path, 1 << 20, Some("id"))).unwrap());
    assert_eq!(recs, vec![("a".into(), "ok".into()), ("7".into(), "int id".into())]);
    let got: Vec<(u64, &str)> = q.iter().map(|q| (q.line.unwrap(), q.error.as_str())).collect();
    assert_eq!(got[0].0, 2);
    assert!(got[0].1.starts_with("invalid JSON"), "{}", got[0].1);
    assert_eq!(got[1], (3, "field `text` is a number, expected a string"));
    assert_eq!(got[2], (4, "missing id field `id` (input.id_field)"));
    assert_eq!(got[3], (5, "invalid UTF-8 at byte 22 of the record"));
    assert_eq!(q[3].raw, b"{\"id\":\"c\",\"text\":\"bad \xff utf8\"}");
}

#[test]
fn metadata_types_are_inferred_and_misfits_kept_in_extra() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.jsonl");
    let lines = [
        r#"{"text":"a","n":1,"x":1.5,"ok":true,"tags":["t"],"mixed":1,"s":"str"}"#,
        r#"{"text":"b","n":2,"x":2,"ok":false,"tags":[],"mixed":"one","s":null}"#,
    ];
    let late = r#"{"text":"c","n":"three","late":{"k":1},"s":"z"}"#;
    let mut content = lines.join("\n");
    content.push('\n');
    content.push_str(late);
    content.push('\n');
    std::fs::write(&path, content).unwrap();
    let mut spec = input(&path, 1 << 20, None);
    spec.sample_records = 2;
    let src = FileSource::open(&spec).unwrap();
    let schema = src.schema();
    let types: Vec<String> = schema.fields().iter().map(|f| format!("{}:{}", f.name(), f.data_type())).collect();
    assert_eq!(
        types[..8],
        ["id:Utf8", "text:Utf8", "n:Int64", "x:Float64", "ok:Boolean", "tags:Utf8", "mixed:Utf8", "s:Utf8"]
    );
    assert_eq!(schema.field_with_name("tags").unwrap().metadata().get("curate.json").map(String::as_str), Some("true"));
    let (_, _, batches) = read_all(&src);
    let b = &batches[0];
    let extra = b.column_by_name("_extra").unwrap().as_string::<i32>();
    assert!(extra.is_null(0) && extra.is_null(1));
    assert_eq!(extra.value(2), r#"{"late":{"k":1},"n":"three"}"#);
    let mixed = b.column_by_name("mixed").unwrap().as_string::<i32>();
    assert_eq!((mixed.value(0), mixed.value(1)), ("1", "\"one\""));
}

#[test]
fn parquet_row_groups_become_shards_and_rows_keep_their_ids() {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("text", DataType::Utf8, true),
        Field::new("n", DataType::Int64, false),
    ]));
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(100)).build();
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema.clone(), Some(props)).unwrap();
    let texts: Vec<Option<String>> = (0..1000).map(|i| (i % 250 != 7).then(|| format!("row {i}"))).collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(texts.clone())), Arc::new(Int64Array::from_iter_values(0..1000))],
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let whole = FileSource::open(&input(&path, 1 << 30, None)).unwrap();
    assert_eq!(whole.shards().len(), 1);
    let split = FileSource::open(&input(&path, 1, None)).unwrap();
    assert_eq!(split.shards().len(), 10, "one shard per row group at a tiny split size");
    let (a, qa, batches) = read_all(&whole);
    let (b, qb, _) = read_all(&split);
    assert_eq!(a, b);
    assert_eq!(qa, qb);
    let f = path.display().to_string();
    assert_eq!(a.len(), 996);
    assert_eq!(a[8], (format!("{f}#9"), "row 9".to_string()));
    assert_eq!(qa.iter().map(|q| q.row.unwrap()).collect::<Vec<_>>(), [7, 257, 507, 757]);
    assert_eq!(qa[0].error, "column `text` is null");
    let n = batches[0].column_by_name("n").unwrap().as_primitive::<arrow_array::types::Int64Type>();
    assert_eq!(n.value(7), 8, "metadata columns stay aligned after a quarantined row");
}

/// Overwrites a file in place with same-size content (no truncation, as an editor might).
fn scribble(path: &Path) {
    use std::io::{Seek, SeekFrom};
    let mut bytes = std::fs::read(path).unwrap();
    for b in bytes.iter_mut().filter(|b| b.is_ascii_digit()) {
        *b = if *b == b'9' { b'0' } else { *b + 1 };
    }
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&bytes).unwrap();
}

/// Every shard read to its end, with the edit made after the first chunk of the first shard;
/// the error that ends the reading, if any.
fn read_with_edit(src: &FileSource, path: &Path) -> Option<String> {
    let mut edited = false;
    for shard in src.shards() {
        for chunk in src.read(shard).unwrap() {
            if let Err(e) = chunk {
                return Some(e.to_string());
            }
            if !edited {
                scribble(path);
                edited = true;
            }
        }
    }
    None
}

#[test]
fn a_file_edited_while_read_ends_its_shards_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..200_000).map(|i| format!("{{\"id\":\"r{i}\",\"text\":\"text number {i}\"}}\n")).collect();
    // A whole plain file, a gzip file, and a plain file split into byte ranges (whose span
    // hashes are taken up front), each edited after the first chunk.
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(lines.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    for (name, bytes, split) in [("whole.jsonl", lines.as_bytes().to_vec(), 1u64 << 40), ("z.jsonl.gz", gz, 1 << 40), ("split.jsonl", lines.as_bytes().to_vec(), 1 << 20)] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let src = FileSource::open(&input(&path, split, Some("id"))).unwrap();
        let before = src.content_hash(&src.shards()[0]).unwrap();
        let err = read_with_edit(&src, &path).unwrap_or_else(|| panic!("{name}: an edit during reading went unnoticed"));
        assert!(err.contains(&format!("{}: the file changed while this run read it", path.display())), "{name}: {err}");
        // The hash the run reports stays the one of the bytes it was planned on.
        assert_eq!(src.content_hash(&src.shards()[0]).unwrap(), before);
        // An unedited file reads cleanly, and its hash is that of its bytes.
        std::fs::write(&path, &bytes).unwrap();
        let src = FileSource::open(&input(&path, split, Some("id"))).unwrap();
        let (recs, q, _) = read_all(&src);
        assert_eq!((recs.len(), q.len()), (200_000, 0), "{name}");
        if split < 1 << 40 {
            // Read without hashing first: the file's hash, taken afterwards for the registry,
            // must agree with what the tasks read.
            scribble(&path);
            let err = src.content_hash(&src.shards()[0]).expect_err("a digest of edited bytes must not name what was read");
            assert!(err.to_string().contains("the file changed while this run read it"), "{err}");
            std::fs::write(&path, &bytes).unwrap();
            let src = FileSource::open(&input(&path, split, Some("id"))).unwrap();
            read_all(&src);
        }
        assert_eq!(src.content_hash(&src.shards()[0]).unwrap(), blake3::hash(&bytes).to_hex().to_string());
    }
}
