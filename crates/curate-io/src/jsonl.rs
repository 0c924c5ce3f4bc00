//! JSONL parsing into record batches, with per-line quarantine and metadata type inference.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, SchemaRef};
use curate_core::io::{BoxError, Chunk, Quarantined};
use curate_core::record::{self, source_fields};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::decode::Input;

/// Rows per batch handed to the pipeline.
const BATCH_ROWS: usize = 8192;
/// Input bytes per batch: bounds memory when records are large.
const BATCH_BYTES: u64 = 8 << 20;
/// Raw bytes kept for a quarantined record.
const QUARANTINE_RAW_MAX: usize = 64 << 10;

/// Type of a metadata column inferred from sampled records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColKind {
    /// Strings.
    Utf8,
    /// Nested values or mixed types, kept as JSON text.
    Json,
    /// Integers that fit in i64.
    Int64,
    /// Numbers (integers and floats mixed).
    Float64,
    /// Booleans.
    Boolean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Null,
    Bool,
    Int,
    Float,
    Str,
    Nested,
}

fn json_type(raw: &RawValue) -> JsonType {
    let s = raw.get().as_bytes();
    match s.first() {
        Some(b'"') => JsonType::Str,
        Some(b'{') | Some(b'[') => JsonType::Nested,
        Some(b't') | Some(b'f') => JsonType::Bool,
        Some(b'n') => JsonType::Null,
        _ if s.iter().any(|&c| c == b'.' || c == b'e' || c == b'E') => JsonType::Float,
        _ => JsonType::Int,
    }
}

impl fmt::Display for JsonType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonType::Null => "null",
            JsonType::Bool => "a boolean",
            JsonType::Int | JsonType::Float => "a number",
            JsonType::Str => "a string",
            JsonType::Nested => "an object or array",
        })
    }
}

/// The object's entries in input order, values left unparsed.
struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, val)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    v.push((k, val));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// How JSONL objects map to columns; shared by every shard of an input.
#[derive(Debug, Clone)]
pub struct JsonlLayout {
    id_field: Option<String>,
    text_field: String,
    columns: Vec<(String, ColKind)>,
    index: HashMap<String, usize>,
}

fn is_reserved(name: &str) -> bool {
    [record::ID, record::TEXT, record::SOURCE, record::EXTRA].contains(&name)
}

impl JsonlLayout {
    /// Infers metadata columns from sample lines. Fields whose sampled values disagree in type
    /// become JSON text columns; fields never sampled land in `_extra` when they appear.
    pub fn infer<'a>(id_field: Option<String>, text_field: String, sample: impl Iterator<Item = &'a str>) -> Self {
        let mut seen: Vec<(String, Vec<JsonType>)> = Vec::new();
        for line in sample {
            let Ok(Entries(entries)) = serde_json::from_str::<Entries>(line) else { continue };
            // A record without text will be quarantined; its fields should not shape the schema.
            if !entries.iter().any(|(k, _)| **k == *text_field) {
                continue;
            }
            for (k, v) in entries {
                if *k == *text_field || Some(&*k) == id_field.as_deref() || is_reserved(&k) {
                    continue;
                }
                let t = json_type(v);
                match seen.iter_mut().find(|(name, _)| *name == *k) {
                    Some((_, types)) if !types.contains(&t) => types.push(t),
                    Some(_) => {}
                    None => seen.push((k.into_owned(), vec![t])),
                }
            }
        }
        let columns: Vec<(String, ColKind)> = seen
            .into_iter()
            .map(|(name, mut types)| {
                types.retain(|t| *t != JsonType::Null);
                let kind = match types.as_slice() {
                    [] | [JsonType::Str] => ColKind::Utf8,
                    [JsonType::Bool] => ColKind::Boolean,
                    [JsonType::Int] => ColKind::Int64,
                    [JsonType::Float] | [JsonType::Int, JsonType::Float] | [JsonType::Float, JsonType::Int] => ColKind::Float64,
                    _ => ColKind::Json,
                };
                (name, kind)
            })
            .collect();
        let index = columns.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        JsonlLayout { id_field, text_field, columns, index }
    }

    /// Arrow fields of the metadata columns.
    pub fn fields(&self) -> Vec<Field> {
        self.columns
            .iter()
            .map(|(name, kind)| match kind {
                ColKind::Utf8 => Field::new(name, DataType::Utf8, true),
                ColKind::Json => record::json_text_field(name),
                ColKind::Int64 => Field::new(name, DataType::Int64, true),
                ColKind::Float64 => Field::new(name, DataType::Float64, true),
                ColKind::Boolean => Field::new(name, DataType::Boolean, true),
            })
            .collect()
    }
}

enum ColBuilder {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
}

/// Accumulates parsed rows column by column.
struct BatchBuilder {
    ids: StringBuilder,
    text: StringBuilder,
    cols: Vec<ColBuilder>,
    offsets: UInt64Builder,
    extra: StringBuilder,
    rows: usize,
}

impl BatchBuilder {
    fn new(layout: &JsonlLayout) -> Self {
        let cols = layout
            .columns
            .iter()
            .map(|(_, k)| match k {
                ColKind::Utf8 | ColKind::Json => ColBuilder::Str(StringBuilder::new()),
                ColKind::Int64 => ColBuilder::Int(Int64Builder::new()),
                ColKind::Float64 => ColBuilder::Float(Float64Builder::new()),
                ColKind::Boolean => ColBuilder::Bool(BooleanBuilder::new()),
            })
            .collect();
        BatchBuilder {
            ids: StringBuilder::new(),
            text: StringBuilder::new(),
            cols,
            offsets: UInt64Builder::new(),
            extra: StringBuilder::new(),
            rows: 0,
        }
    }

    fn finish(&mut self, schema: &SchemaRef, file: &str) -> Result<RecordBatch, BoxError> {
        let mut columns: Vec<ArrayRef> = vec![Arc::new(self.ids.finish()), Arc::new(self.text.finish())];
        for c in &mut self.cols {
            columns.push(match c {
                ColBuilder::Str(b) => Arc::new(b.finish()),
                ColBuilder::Int(b) => Arc::new(b.finish()),
                ColBuilder::Float(b) => Arc::new(b.finish()),
                ColBuilder::Bool(b) => Arc::new(b.finish()),
            });
        }
        let files: ArrayRef = Arc::new(arrow_array::StringArray::from(vec![file; self.rows]));
        let offsets: ArrayRef = Arc::new(self.offsets.finish());
        let rows: ArrayRef = arrow_array::new_null_array(&DataType::UInt64, self.rows);
        columns.push(Arc::new(StructArray::try_new(source_fields(), vec![files, offsets, rows], None)?));
        columns.push(Arc::new(self.extra.finish()));
        self.rows = 0;
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

fn parse_str<'a>(raw: &'a RawValue) -> Option<Cow<'a, str>> {
    serde_json::from_str::<Cow<'a, str>>(raw.get()).ok()
}

/// Parses one line into `b`; on error nothing is appended and the reason is returned.
fn parse_line(layout: &JsonlLayout, line: &str, id: &dyn Fn() -> String, b: &mut BatchBuilder) -> Result<(), String> {
    let Entries(entries) = serde_json::from_str::<Entries>(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut text: Option<Cow<str>> = None;
    let mut rec_id: Option<Cow<str>> = None;
    let mut slots: Vec<Option<&RawValue>> = vec![None; layout.columns.len()];
    let mut extra: Vec<(&str, &RawValue)> = Vec::new();
    for (k, v) in &entries {
        if **k == *layout.text_field {
            text = Some(match json_type(v) {
                JsonType::Str => parse_str(v).ok_or("field `text` holds an invalid string")?,
                other => return Err(format!("field `{}` is {other}, expected a string", layout.text_field)),
            });
        } else if Some(&**k) == layout.id_field.as_deref() {
            rec_id = Some(match json_type(v) {
                JsonType::Str => parse_str(v).ok_or("id field holds an invalid string")?,
                JsonType::Int => Cow::Borrowed(v.get()),
                other => return Err(format!("id field `{k}` is {other}, expected a string or an integer")),
            });
        } else {
            match layout.index.get(&**k) {
                Some(&i) => slots[i] = Some(v),
                // A re-read curate output: the record gets its new origin (as with Parquet).
                None if **k == *record::SOURCE => {}
                None => extra.push((k, v)),
            }
        }
    }
    let text = text.ok_or_else(|| format!("missing field `{}` (input.text_field)", layout.text_field))?;
    let rec_id = match (&layout.id_field, rec_id) {
        (Some(_), Some(id)) => id,
        (Some(f), None) => return Err(format!("missing id field `{f}` (input.id_field)")),
        (None, _) => Cow::Owned(id()),
    };
    for ((slot, (name, kind)), col) in slots.iter().zip(&layout.columns).zip(&mut b.cols) {
        let Some(raw) = slot else {
            append_null(col);
            continue;
        };
        let t = json_type(raw);
        let fits = match (kind, &mut *col) {
            (_, _) if t == JsonType::Null => {
                append_null(col);
                true
            }
            (ColKind::Json, ColBuilder::Str(c)) => {
                c.append_value(raw.get());
                true
            }
            (ColKind::Utf8, ColBuilder::Str(c)) if t == JsonType::Str => match parse_str(raw) {
                Some(s) => {
                    c.append_value(&*s);
                    true
                }
                None => false,
            },
            (ColKind::Int64, ColBuilder::Int(c)) if t == JsonType::Int => match raw.get().parse::<i64>() {
                Ok(n) => {
                    c.append_value(n);
                    true
                }
                Err(_) => false,
            },
            (ColKind::Float64, ColBuilder::Float(c)) if matches!(t, JsonType::Int | JsonType::Float) => {
                match raw.get().parse::<f64>() {
                    Ok(n) => {
                        c.append_value(n);
                        true
                    }
                    Err(_) => false,
                }
            }
            (ColKind::Boolean, ColBuilder::Bool(c)) if t == JsonType::Bool => {
                c.append_value(raw.get() == "true");
                true
            }
            _ => false,
        };
        if !fits {
            append_null(col);
            extra.push((name, raw));
        }
    }
    b.ids.append_value(&*rec_id);
    b.text.append_value(&*text);
    if extra.is_empty() {
        b.extra.append_null();
    } else {
        let mut obj = String::from("{");
        for (i, (k, v)) in extra.iter().enumerate() {
            if i > 0 {
                obj.push(',');
            }
            obj.push_str(&serde_json::to_string(k).unwrap_or_default());
            obj.push(':');
            obj.push_str(v.get());
        }
        obj.push('}');
        b.extra.append_value(obj);
    }
    b.rows += 1;
    Ok(())
}

fn append_null(col: &mut ColBuilder) {
    match col {
        ColBuilder::Str(c) => c.append_null(),
        ColBuilder::Int(c) => c.append_null(),
        ColBuilder::Float(c) => c.append_null(),
        ColBuilder::Bool(c) => c.append_null(),
    }
}

/// Reads one line of at most `cap` bytes into `buf` (the rest of a longer line is consumed
/// and counted). Returns the bytes consumed including the newline, 0 at end of input.
pub(crate) fn read_line_capped(r: &mut impl BufRead, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<u64> {
    buf.clear();
    let mut total = 0u64;
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(total);
        }
        let (take, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&avail[..take.min(room)]);
        r.consume(take);
        total += take as u64;
        if done {
            return Ok(total);
        }
    }
}

/// Counts lines before byte `upto` of a file, to number lines of a shard that starts mid-file.
pub type LineCounter<'a> = Box<dyn Fn(u64) -> Result<u64, BoxError> + Send + 'a>;

/// Streams a JSONL shard as chunks.
pub struct JsonlReader<'a> {
    layout: &'a JsonlLayout,
    schema: SchemaRef,
    file: String,
    reader: BufReader<Input<'a>>,
    /// Absolute (decompressed) offset of the next line.
    pos: u64,
    end: Option<u64>,
    /// Line number of the next line, once known.
    line: Option<u64>,
    count_lines: LineCounter<'a>,
    /// Compressed bytes reported so far: progress is measured in input bytes, not
    /// decompressed ones.
    raw_reported: u64,
    max_record_bytes: usize,
    buf: Vec<u8>,
    done: bool,
}

/// The UTF-8 byte order mark some tools write at the start of a file.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<'a> JsonlReader<'a> {
    /// A reader over `input`, positioned at byte `start` of the (decompressed) file. When
    /// `start > 0`, `input` must begin at byte `start - 1` so a record cut by the shard
    /// boundary can be skipped (it belongs to the previous shard).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        layout: &'a JsonlLayout,
        schema: SchemaRef,
        file: String,
        input: Input<'a>,
        start: u64,
        end: Option<u64>,
        count_lines: LineCounter<'a>,
        max_record_bytes: usize,
    ) -> Result<Self, BoxError> {
        let mut reader = BufReader::with_capacity(1 << 20, input);
        let mut buf = Vec::new();
        let (pos, line) = if start == 0 {
            (0, Some(1))
        } else {
            let skipped = read_line_capped(&mut reader, &mut buf, 0)?;
            (start - 1 + skipped, None)
        };
        Ok(JsonlReader {
            layout,
            schema,
            file,
            reader,
            pos,
            end,
            line,
            count_lines,
            raw_reported: 0,
            max_record_bytes,
            buf,
            done: false,
        })
    }

    fn line_number(&mut self) -> Result<u64, BoxError> {
        match self.line {
            Some(l) => Ok(l),
            None => {
                let l = (self.count_lines)(self.pos)? + 1;
                self.line = Some(l);
                Ok(l)
            }
        }
    }

    fn quarantine(&mut self, error: String, raw: Vec<u8>) -> Result<Quarantined, BoxError> {
        let compressed = self.reader.get_ref().raw_consumed().is_some();
        Ok(Quarantined {
            file: self.file.clone(),
            line: Some(self.line_number()?),
            byte_offset: if compressed { None } else { Some(self.pos) },
            row: None,
            error,
            raw,
        })
    }

    /// Parses or quarantines the `n`-byte line in `buf` that starts at `self.pos`.
    fn take_line(&mut self, buf: &mut Vec<u8>, n: u64, b: &mut BatchBuilder, quarantined: &mut Vec<Quarantined>) -> Result<(), BoxError> {
        // A byte order mark is an encoding marker of the file, not part of its first record.
        let start = if self.pos == 0 && buf.starts_with(BOM) { BOM.len() } else { 0 };
        let content = trim_line(&buf[start..]);
        let unterminated = n as usize == buf.len() && !buf.ends_with(b"\n");
        let cut = if unterminated { self.reader.get_ref().failure() } else { None };
        // A line cut by a decoding failure is reported even if what was decoded of it is
        // blank: the rest of it is in the unreadable part.
        if content.is_empty() && cut.is_none() {
            return Ok(());
        }
        let damaged = self.reader.get_mut().damage(self.pos, self.pos + n);
        if let Some(reason) = damaged.or(cut.map(|f| format!("{f} (this record is cut short by it)").into())) {
            let raw = content.to_vec();
            quarantined.push(self.quarantine(format!("record decoded from damaged input, not trusted: {reason}"), raw)?);
        } else if n as usize > self.max_record_bytes {
            buf.truncate(QUARANTINE_RAW_MAX);
            let msg = format!("record of {n} bytes exceeds the {} byte limit (first {} bytes kept)", self.max_record_bytes, buf.len());
            quarantined.push(self.quarantine(msg, buf.clone())?);
        } else {
            let outcome = match std::str::from_utf8(content) {
                Ok(line) => {
                    let (file, pos) = (&self.file, self.pos);
                    parse_line(self.layout, line, &|| format!("{file}@{pos}"), b)
                }
                Err(e) => Err(format!("invalid UTF-8 at byte {} of the record", e.valid_up_to())),
            };
            match outcome {
                Ok(()) => b.offsets.append_value(self.pos),
                Err(msg) => quarantined.push(self.quarantine(msg, content.to_vec())?),
            }
        }
        Ok(())
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>, BoxError> {
        if self.done {
            return Ok(None);
        }
        let mut b = BatchBuilder::new(self.layout);
        let mut quarantined = Vec::new();
        let mut consumed = 0u64;
        while b.rows < BATCH_ROWS && consumed < BATCH_BYTES {
            if self.end.is_some_and(|e| self.pos >= e) {
                self.done = true;
                break;
            }
            let cap = self.max_record_bytes.max(QUARANTINE_RAW_MAX) + 1;
            let mut buf = std::mem::take(&mut self.buf);
            let n = read_line_capped(&mut self.reader, &mut buf, cap).map_err(|e| format!("{}: read error: {e}", self.file))?;
            if n == 0 {
                self.buf = buf;
                self.done = true;
                if let Some(failure) = self.reader.get_ref().failure() {
                    quarantined.push(self.quarantine(format!("{failure} (the rest of the file is not read)"), Vec::new())?);
                }
                break;
            }
            consumed += n;
            let taken = self.take_line(&mut buf, n, &mut b, &mut quarantined);
            self.buf = buf;
            taken?;
            self.pos += n;
            if let Some(l) = self.line.as_mut() {
                *l += 1;
            }
        }
        if b.rows == 0 && quarantined.is_empty() && consumed == 0 {
            return Ok(None);
        }
        let batch = b.finish(&self.schema, &self.file)?;
        let bytes = match self.reader.get_ref().raw_consumed() {
            Some(now) => std::mem::replace(&mut self.raw_reported, now).abs_diff(now),
            None => consumed,
        };
        Ok(Some(Chunk { batch, quarantined, bytes }))
    }
}

fn trim_line(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && matches!(buf[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    let mut start = 0;
    while start < end && matches!(buf[start], b' ' | b'\t') {
        start += 1;
    }
    &buf[start..end]
}

impl Iterator for JsonlReader<'_> {
    type Item = Result<Chunk, BoxError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_chunk() {
            Ok(Some(c)) => Some(Ok(c)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
