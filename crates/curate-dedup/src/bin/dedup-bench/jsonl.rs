//! JSONL corpus access shared by the subcommands: one scan records line offsets, then
//! texts are re-read by position so memory does not grow with the corpus.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use curate_dedup::{DedupError, Result, TextSource};
use serde::Deserialize;

/// `"id"` as a JSON number or a string of digits (datatrove writes strings).
#[derive(Deserialize)]
#[serde(untagged)]
enum Id<'a> {
    Num(u64),
    Str(#[serde(borrow)] Cow<'a, str>),
}

/// The fields of a corpus line the binaries use; others are ignored.
#[derive(Deserialize)]
pub struct Line<'a> {
    #[serde(borrow)]
    id: Id<'a>,
    /// Document text.
    #[serde(borrow)]
    pub text: Cow<'a, str>,
    /// Planted-duplicate group written by `dedup-corpus` (absent in other corpora).
    #[serde(default)]
    pub group: Option<u64>,
    /// Word-edit rate of a planted copy; 0 for exact copies, absent for originals.
    #[serde(default)]
    pub edit_rate: Option<f64>,
}

impl Line<'_> {
    /// Numeric id, or an error naming the line.
    pub fn id(&self, path: &Path, line_no: usize) -> Result<u64> {
        match &self.id {
            Id::Num(n) => Ok(*n),
            Id::Str(s) => s.parse().map_err(|_| {
                corrupt(
                    path,
                    line_no,
                    format!("id {s:?} is not an unsigned integer"),
                )
            }),
        }
    }
}

fn corrupt(path: &Path, line_no: usize, reason: String) -> DedupError {
    DedupError::Corrupt {
        path: path.to_owned(),
        reason: format!("line {}: {reason}", line_no + 1),
    }
}

/// Parses one JSONL line.
pub fn parse_line<'a>(bytes: &'a [u8], path: &Path, line_no: usize) -> Result<Line<'a>> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(path, line_no, e.to_string()))
}

/// A JSONL file indexed by line offsets.
pub struct JsonlCorpus {
    path: PathBuf,
    file: File,
    /// Start of line i is `offsets[i]`, its end (newline excluded) `offsets[i + 1] - 1`.
    offsets: Vec<u64>,
    line: RefCell<Vec<u8>>,
}

impl JsonlCorpus {
    /// Scans `path`, calling `on_line(index, parsed line)` for every non-empty line.
    pub fn scan(
        path: &Path,
        mut on_line: impl FnMut(usize, &Line<'_>) -> Result<()>,
    ) -> Result<Self> {
        let io = |e| DedupError::io(path, e);
        let file = File::open(path).map_err(io)?;
        let mut reader = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io)?);
        let mut offsets = Vec::new();
        let mut pos = 0u64;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            let content = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if !content.iter().all(u8::is_ascii_whitespace) {
                let idx = offsets.len();
                on_line(idx, &parse_line(content, path, idx)?)?;
                offsets.push(pos);
            }
            pos += n as u64;
            // Lines without a trailing newline still end one byte before the next offset.
            if !buf.ends_with(b"\n") {
                pos += 1;
            }
        }
        let mut ends = offsets.clone();
        ends.push(pos);
        Ok(JsonlCorpus {
            path: path.to_owned(),
            file,
            offsets: ends,
            line: RefCell::new(Vec::new()),
        })
    }

    /// Number of documents.
    pub fn docs(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Calls `f` with the raw bytes of line `idx` (newline excluded); the buffer is reused.
    pub fn with_raw<R>(&self, idx: usize, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
        let start = self.offsets[idx];
        let len = (self.offsets[idx + 1] - start - 1) as usize;
        let mut line = self.line.borrow_mut();
        line.resize(len, 0);
        self.file
            .read_exact_at(&mut line, start)
            .map_err(|e| DedupError::io(&self.path, e))?;
        f(line.trim_ascii_end())
    }

    /// Calls `f` with the parsed line `idx`.
    pub fn with_line<R>(&self, idx: usize, f: impl FnOnce(&Line<'_>) -> Result<R>) -> Result<R> {
        self.with_raw(idx, |raw| f(&parse_line(raw, &self.path, idx)?))
    }
}

impl TextSource for JsonlCorpus {
    fn len(&self) -> usize {
        self.docs()
    }

    fn text(&self, idx: usize, buf: &mut String) -> Result<()> {
        self.with_line(idx, |l| {
            buf.clear();
            buf.push_str(&l.text);
            Ok(())
        })
    }
}
