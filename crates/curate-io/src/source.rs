//! The file source: expands input paths, plans shards, infers the record schema and
//! streams shards as chunks.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use arrow_schema::SchemaRef;
use curate_core::io::{BoxError, Chunk, Shard, ShardPart, Source};
use curate_core::record;
use curate_core::spec::{InputFormat, InputSpec};

use crate::decode::{Codec, Input, Reopen, HOLD_BYTES};
use crate::jsonl::{read_line_capped, JsonlLayout, JsonlReader, BOM};
use crate::location::{expand, Location};
use crate::parquet_in::{read_row_groups, ParquetFile, ParquetLayout};
use crate::verify::{self, Digest, Hashed, HashingReader, Span, Verified};
use crate::IoError;

/// Records larger than this are quarantined rather than parsed.
const MAX_RECORD_BYTES: usize = 256 << 20;

fn format_of(name: &str) -> Option<InputFormat> {
    let base = name.trim_end_matches(".gz").trim_end_matches(".zstd").trim_end_matches(".zst");
    if base.ends_with(".jsonl") || base.ends_with(".json") || base.ends_with(".ndjson") {
        Some(InputFormat::Jsonl)
    } else if base.ends_with(".parquet") || base.ends_with(".pq") {
        Some(InputFormat::Parquet)
    } else {
        None
    }
}

/// A streaming decoder for schema sampling, which needs only the first lines: the verified
/// decoding of `Decoded` may decompress a whole member before it yields a byte.
fn decompress<'a>(codec: Codec, r: Box<dyn Read + Send + 'a>) -> Result<Box<dyn Read + Send + 'a>, std::io::Error> {
    Ok(match codec {
        Codec::Plain => r,
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, r))),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
    })
}

enum Layout {
    Jsonl(JsonlLayout),
    Parquet(ParquetLayout),
}

/// Records from local or object-store files, JSONL (plain, gzip, zstd) or Parquet.
pub struct FileSource {
    layout: Layout,
    schema: SchemaRef,
    shards: Vec<Shard>,
    /// Each file with its size.
    files: HashMap<String, (Location, u64)>,
    /// Content hashes of each file (and of its shards' spans), computed on first use; a lock
    /// per file so tasks of one split file wait for a single hashing pass while other files
    /// hash in parallel.
    hashes: HashMap<String, Mutex<Option<Digest>>>,
    /// Byte span of each Parquet row group, per file.
    row_group_spans: HashMap<String, Vec<Span>>,
    /// Hashes of the spans tasks read before the file's digest was taken (file, span, hash):
    /// a digest taken later must agree with them.
    read: Mutex<Vec<(String, Span, String)>>,
}

impl FileSource {
    /// Expands the input paths, checks the format, infers the schema and plans shards.
    pub fn open(spec: &InputSpec) -> Result<Self, IoError> {
        let mut files = Vec::new();
        for pattern in spec.path.as_vec() {
            files.extend(expand(&pattern)?);
        }
        let mut seen = std::collections::HashSet::new();
        files.retain(|(loc, _)| seen.insert(loc.display.clone()));
        let format = match spec.format {
            Some(f) => f,
            None => {
                let mut formats = files.iter().map(|(l, _)| (l, format_of(&l.display)));
                let (first, f) = formats.next().ok_or_else(|| IoError::NotFound { pattern: "input.path".into() })?;
                let f = f.ok_or_else(|| IoError::Format {
                    file: first.display.clone(),
                    message: "cannot tell the format from the extension; set input.format to jsonl or parquet".into(),
                })?;
                if let Some((other, _)) = formats.find(|(_, g)| *g != Some(f)) {
                    return Err(IoError::Format {
                        file: other.display.clone(),
                        message: format!("has a different format than {}; set input.format or split the inputs", first.display),
                    });
                }
                f
            }
        };
        let mut shards = Vec::new();
        let mut row_group_spans = HashMap::new();
        let layout = match format {
            InputFormat::Jsonl => {
                let sample = sample_lines(&files, spec.sample_records)?;
                let layout = JsonlLayout::infer(spec.id_field.clone(), spec.text_field.clone(), sample.iter().map(String::as_str));
                for (loc, meta) in &files {
                    let split = spec.split_size.0;
                    if Codec::of(&loc.display) == Codec::Plain && meta.size > split {
                        let mut start = 0;
                        while start < meta.size {
                            let end = (start + split).min(meta.size);
                            shards.push(Shard {
                                file: loc.display.clone(),
                                part: ShardPart::Bytes { start, end },
                                bytes: end - start,
                                version: version_of(meta),
                            });
                            start = end;
                        }
                    } else {
                        shards.push(Shard { file: loc.display.clone(), part: ShardPart::Whole, bytes: meta.size, version: version_of(meta) });
                    }
                }
                Layout::Jsonl(layout)
            }
            InputFormat::Parquet => {
                let mut layout = None;
                for (loc, meta) in &files {
                    let pq = ParquetFile::open(loc, meta.size)?;
                    if layout.is_none() {
                        layout = Some(ParquetLayout::from_schema(&loc.display, pq.schema(), spec.id_field.clone(), spec.text_field.clone())?);
                    }
                    let md = pq.metadata();
                    row_group_spans.insert(loc.display.clone(), md.row_groups().iter().map(row_group_span).collect());
                    let mut start = 0;
                    let mut acc = 0u64;
                    for rg in 0..md.num_row_groups() {
                        acc += md.row_group(rg).compressed_size() as u64;
                        if acc >= spec.split_size.0 || rg + 1 == md.num_row_groups() {
                            shards.push(Shard {
                                file: loc.display.clone(),
                                part: ShardPart::RowGroups { start, end: rg + 1 },
                                bytes: acc,
                                version: version_of(meta),
                            });
                            start = rg + 1;
                            acc = 0;
                        }
                    }
                }
                Layout::Parquet(layout.ok_or_else(|| IoError::NotFound { pattern: "input.path".into() })?)
            }
        };
        let metadata = match &layout {
            Layout::Jsonl(l) => l.fields(),
            Layout::Parquet(l) => l.fields(),
        };
        let files: HashMap<String, (Location, u64)> =
            files.into_iter().map(|(loc, meta)| (loc.display.clone(), (loc, meta.size))).collect();
        let hashes = files.keys().map(|f| (f.clone(), Default::default())).collect();
        Ok(FileSource {
            layout,
            schema: record::input_schema(metadata),
            shards,
            files,
            hashes,
            row_group_spans,
            read: Mutex::default(),
        })
    }

    /// The bytes of its file a shard's records come from, when not the whole file.
    fn span_of(&self, shard: &Shard) -> Option<Span> {
        match &shard.part {
            ShardPart::Whole => None,
            ShardPart::Bytes { start, end } => Some((*start, *end)),
            ShardPart::RowGroups { start, end } => {
                let spans = self.row_group_spans.get(&shard.file)?;
                Some((spans.get(*start)?.0, spans.get(end.checked_sub(1)?)?.1))
            }
        }
    }

    /// The location and size of one of this source's files.
    fn file(&self, file: &str) -> Result<&(Location, u64), BoxError> {
        self.files.get(file).ok_or_else(|| format!("{file}: not part of this input").into())
    }

    /// The memo of `file`'s hashes.
    fn memo(&self, file: &str) -> Result<std::sync::MutexGuard<'_, Option<Digest>>, BoxError> {
        self.hashes
            .get(file)
            .ok_or_else(|| format!("{file}: not part of this input"))?
            .lock()
            .map_err(|_| "input hash memo poisoned".into())
    }

    /// The hashes of `shard`'s file and of every shard span in it, from one pass over it.
    fn digest(&self, shard: &Shard) -> Result<Digest, BoxError> {
        let mut memo = self.memo(&shard.file)?;
        if let Some(d) = memo.as_ref() {
            return Ok(d.clone());
        }
        let (loc, _) = self.file(&shard.file)?;
        let spans: Vec<Span> = self.shards.iter().filter(|s| s.file == shard.file).filter_map(|s| self.span_of(s)).collect();
        let digest = verify::digest(loc, &spans)?;
        for (file, span, read) in self.read.lock().map_err(|_| "input hash state poisoned")?.iter() {
            if *file == shard.file && digest.span(*span).is_some_and(|now| now != read) {
                return Err(verify::changed(file, &format!("bytes {span:?} hash {} now, {read} as read", digest.span(*span).unwrap_or_default())));
            }
        }
        Ok(memo.insert(digest).clone())
    }

    /// What to check once a shard was read: its bytes hashed as expected, and the file's
    /// size and modification time (or ETag) did not change while it was read.
    fn verifier<'a>(
        &'a self,
        shard: &'a Shard,
        hashed: Option<Arc<Mutex<Hashed>>>,
    ) -> Result<Box<dyn FnOnce() -> Result<(), BoxError> + Send + 'a>, BoxError> {
        let (loc, _) = self.file(&shard.file)?;
        // Compared with what the same call says at the end (listings and HEAD can differ in
        // what they report, e.g. S3 ETags and timestamp precision).
        let before = loc.head()?;
        let span = self.span_of(shard);
        // When the cache asked for the file's hash before reading, what is read must match
        // it. Otherwise the hash is the one reading produces (a whole file), or the span's
        // hash is kept for the file's digest, taken after the run, to agree with.
        let expected = self.memo(&shard.file)?.as_ref().and_then(|d| match span {
            Some(span) => d.span(span).map(str::to_string),
            None => Some(d.file.clone()),
        });
        Ok(Box::new(move || {
            let got = match (hashed, span) {
                (Some(h), _) => h.lock().map_err(|_| "input hash state poisoned")?.finish(loc)?,
                (None, Some(span)) => Hashed::window(span).finish(loc)?,
                (None, None) => return Err(format!("{}: nothing to verify the read against", shard.file).into()),
            };
            match expected {
                Some(e) if e != got => return Err(verify::changed(&shard.file, &format!("content hash {e} before, {got} as read"))),
                Some(_) => {}
                None => match span {
                    Some(span) => self.read.lock().map_err(|_| "input hash state poisoned")?.push((shard.file.clone(), span, got)),
                    None => {
                        self.memo(&shard.file)?.get_or_insert_with(|| Digest { file: got, spans: Vec::new() });
                    }
                },
            }
            let now = loc.head()?;
            if (before.size, &before.e_tag, before.last_modified) != (now.size, &now.e_tag, now.last_modified) {
                return Err(verify::changed(&shard.file, &format!("size:modified was {}, is {}", version_of(&before), version_of(&now))));
            }
            Ok(())
        }))
    }

    /// Column names every record of this source has.
    pub fn column_names(&self) -> Vec<String> {
        self.schema.fields().iter().map(|f| f.name().clone()).collect()
    }
}

/// Identity of a file's content as listed: size plus ETag, or size plus modification time.
/// An input file as a listing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Location as the input names it.
    pub file: String,
    /// Identity of its content (size plus modification time or ETag), as shards carry it.
    pub version: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification (ms since the epoch).
    pub modified_ms: i64,
}

/// The files an input's paths and globs match now, without opening any: what a watch
/// compares with the files it consumed. A pattern that matches nothing adds nothing.
pub fn list_files(spec: &InputSpec) -> Result<Vec<ListedFile>, IoError> {
    let mut out: Vec<ListedFile> = Vec::new();
    for pattern in spec.path.as_vec() {
        let files = match crate::location::expand(&pattern) {
            Err(IoError::NotFound { .. }) => continue,
            other => other?,
        };
        for (loc, meta) in files {
            if !out.iter().any(|f| f.file == loc.display) {
                out.push(ListedFile { file: loc.display, version: version_of(&meta), size: meta.size, modified_ms: meta.last_modified.timestamp_millis() });
            }
        }
    }
    Ok(out)
}

fn version_of(meta: &object_store::ObjectMeta) -> String {
    match &meta.e_tag {
        Some(tag) => format!("{}:{tag}", meta.size),
        None => format!("{}:{}", meta.size, meta.last_modified.timestamp_nanos_opt().unwrap_or_default()),
    }
}

/// Bytes of a row group's column chunks.
fn row_group_span(rg: &parquet::file::metadata::RowGroupMetaData) -> Span {
    let ranges = rg.columns().iter().map(|c| c.byte_range());
    let start = ranges.clone().map(|(s, _)| s).min().unwrap_or(0);
    let end = ranges.map(|(s, l)| s + l).max().unwrap_or(0);
    (start, end)
}

/// The first `n` non-empty lines across files in order, for schema inference.
fn sample_lines(files: &[(Location, object_store::ObjectMeta)], n: usize) -> Result<Vec<String>, IoError> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for (loc, _) in files {
        if out.len() >= n {
            break;
        }
        let raw = loc.open_range(0, None)?;
        let mut r = BufReader::new(decompress(Codec::of(&loc.display), raw).map_err(|e| IoError::Read { file: loc.display.clone(), source: e })?);
        let mut first = true;
        while out.len() < n {
            // A damaged file is sampled as far as it reads; its records are quarantined later.
            match read_line_capped(&mut r, &mut buf, 1 << 20) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = if std::mem::take(&mut first) { buf.strip_prefix(BOM).unwrap_or(&buf) } else { &buf };
                    if let Ok(s) = std::str::from_utf8(line) {
                        if !s.trim().is_empty() {
                            out.push(s.to_string());
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Counts newlines in the first `upto` bytes of a file.
fn count_newlines(loc: &Location, upto: u64) -> Result<u64, BoxError> {
    let mut r = BufReader::with_capacity(1 << 20, loc.open_range(0, Some(upto))?);
    let mut n = 0u64;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(n);
        }
        n += memchr::memchr_iter(b'\n', buf).count() as u64;
        let len = buf.len();
        r.consume(len);
    }
}

impl Source for FileSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn shards(&self) -> &[Shard] {
        &self.shards
    }

    fn content_hash(&self, shard: &Shard) -> Result<String, BoxError> {
        Ok(self.digest(shard)?.file)
    }

    fn read<'a>(&'a self, shard: &'a Shard) -> Result<Box<dyn Iterator<Item = Result<Chunk, BoxError>> + Send + 'a>, BoxError> {
        let (loc, len) = self.file(&shard.file)?;
        match (&self.layout, &shard.part) {
            (Layout::Jsonl(layout), part) => {
                let (start, end) = match part {
                    ShardPart::Bytes { start, end } => (*start, Some(*end)),
                    _ => (0, None),
                };
                let from = start.saturating_sub(1);
                let window = match part {
                    ShardPart::Bytes { start, end } => (*start, *end),
                    _ => (0, u64::MAX),
                };
                // Hashes the first pass over the file; a second pass over a large compressed
                // unit (decode.rs) re-reads bytes this hash and the size/time check vouched for.
                let (raw, hashed) = HashingReader::new(loc.open_range(from, None)?, from, window);
                let check = self.verifier(shard, Some(hashed))?;
                let reopen: Reopen<'a> = Box::new(move |at| loc.open_range(at, None).map_err(std::io::Error::other));
                let input = Input::new(Codec::of(&shard.file), shard.file.clone(), Box::new(raw), Some(reopen), HOLD_BYTES);
                let count: crate::jsonl::LineCounter<'a> = Box::new(move |upto| count_newlines(loc, upto));
                let inner =
                    Box::new(JsonlReader::new(layout, self.schema.clone(), shard.file.clone(), input, start, end, count, MAX_RECORD_BYTES)?);
                Ok(Box::new(Verified { inner, check: Some(check) }))
            }
            (Layout::Parquet(layout), ShardPart::RowGroups { start, end }) => {
                // Decoding reads column chunks at random; their span is re-hashed afterwards.
                let check = self.verifier(shard, None)?;
                let inner = read_row_groups(layout, self.schema.clone(), loc, *len, *start, *end)?;
                Ok(Box::new(Verified { inner, check: Some(check) }))
            }
            (Layout::Parquet(_), other) => Err(format!("{}: Parquet shards are row groups, not {other:?}", shard.file).into()),
        }
    }
}
