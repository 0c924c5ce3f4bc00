//! Pure-Rust reader and predictor for fastText classification models (`.bin`, and `.ftz`
//! quantized with or without `-qnorm`, `-qout` and `-cutoff`), giving the predictions of the
//! official `fasttext` Python package: same labels, same order (ties included), same
//! probabilities. Supports the softmax, hierarchical softmax (`hs`), one-vs-all (`ova`) and
//! negative-sampling (`ns`) losses, word n-grams and character n-grams.
//!
//! fastText behaviours this reproduces, which a reimplementation easily misses:
//! - Python's `predict` appends a newline, read as the token `</s>`: it is always part of the
//!   input (its row, and a word n-gram with the last word). A `</s>` inside the text ends it.
//! - Tokens that start with `__label__` (always that prefix: models do not store theirs) are
//!   dropped, even unknown ones, and take no part in word n-grams.
//! - Hashes are FNV-1a over *signed* bytes; word n-gram hashes are stored as `int32_t` and
//!   widened with sign extension; a negative `maxn` means unbounded n-grams.
//! - Probabilities are `expf(float(log(p + 1e-5)))` (so a certain label reports 1.00001);
//!   softmax uses `exp` in double, the sigmoids `expf`; ties are ordered by libstdc++'s heap
//!   algorithms, which this crate replays move for move.
//! - With hierarchical softmax even `k = all, threshold = 0` omits labels whose path falls
//!   below `log(1e-5)`.
//!
//! ```no_run
//! let model = curate_fasttext::FastText::load("lid.176.ftz".as_ref())?;
//! let mut predictor = model.predictor();
//! for p in predictor.predict("Bonjour tout le monde", 2, 0.0) {
//!     println!("{} {:.4}", model.labels()[p.label], p.prob);
//! }
//! # Ok::<(), curate_fasttext::FastTextError>(())
//! ```

#![warn(missing_docs)]

mod binary;
mod dict;
mod error;
mod loss;
mod matrix;

use std::io::{BufReader, Read};
use std::path::Path;

use binary::Reader;
pub use dict::hash;
use dict::{Buckets, Dictionary, Lookup, EOS};
pub use error::FastTextError;
use loss::{Scored, Tree};
use matrix::{Input, Output};

const MAGIC: i32 = 793_712_314;
const VERSION: i32 = 12;
/// Quantized input matrices up to this size are decoded at load: adding a dense row is much
/// faster than walking its codes, and the sums are bit-identical.
const DECODE_LIMIT: usize = 256 << 20;

/// One predicted label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Index into [`FastText::labels`].
    pub label: usize,
    /// Probability as fastText reports it: `exp(log(p + 1e-5))`, in f32.
    pub prob: f32,
}

/// The loss a model was trained with, which decides how its outputs become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// Hierarchical softmax over a Huffman tree of the labels.
    HierarchicalSoftmax,
    /// Negative sampling: independent sigmoids, like one-vs-all.
    NegativeSampling,
    /// Softmax over all labels.
    Softmax,
    /// One-vs-all: an independent sigmoid per label.
    OneVsAll,
}

enum Head {
    Softmax,
    Sigmoid(Vec<f32>),
    Hs(Tree),
}

/// A loaded fastText classification model.
pub struct FastText {
    labels: Vec<String>,
    dim: usize,
    loss: LossKind,
    dict: Dictionary,
    input: Input,
    output: Output,
    head: Head,
}

impl std::fmt::Debug for FastText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastText")
            .field("labels", &self.labels.len())
            .field("words", &self.dict.nwords)
            .field("dim", &self.dim)
            .field("loss", &self.loss)
            .finish_non_exhaustive()
    }
}

impl FastText {
    /// Loads a model file; errors name the file.
    pub fn load(path: &Path) -> Result<FastText, FastTextError> {
        Self::load_with(path, DECODE_LIMIT)
    }

    /// Reads a model from a stream (the whole file, as fastText writes it).
    pub fn read(reader: impl Read) -> Result<FastText, FastTextError> {
        Self::read_with(reader, DECODE_LIMIT)
    }

    /// Like [`FastText::read`], but keeps a quantized input matrix as codes: less memory,
    /// slower predictions, same results.
    pub fn read_compact(reader: impl Read) -> Result<FastText, FastTextError> {
        Self::read_with(reader, 0)
    }

    fn load_with(path: &Path, decode_limit: usize) -> Result<FastText, FastTextError> {
        let in_file = |e: FastTextError| FastTextError::File { path: path.to_path_buf(), source: Box::new(e) };
        let file = std::fs::File::open(path).map_err(|e| in_file(FastTextError::Io { offset: 0, source: e }))?;
        Self::read_with(file, decode_limit).map_err(in_file)
    }

    fn read_with(reader: impl Read, decode_limit: usize) -> Result<FastText, FastTextError> {
        let mut r = Reader::new(BufReader::with_capacity(1 << 16, reader));
        let magic = r.i32("header")?;
        if magic != MAGIC {
            return Err(FastTextError::BadMagic { found: magic as u32 });
        }
        let version = r.i32("header")?;
        if !(11..=VERSION).contains(&version) {
            return Err(FastTextError::UnsupportedVersion(version));
        }

        let what = "arguments";
        let dim = r.i32(what)?;
        let _ws = r.i32(what)?;
        let _epoch = r.i32(what)?;
        let _min_count = r.i32(what)?;
        let _neg = r.i32(what)?;
        let word_ngrams = r.i32(what)?;
        let loss = r.i32(what)?;
        let model = r.i32(what)?;
        let bucket = r.i32(what)?;
        let minn = r.i32(what)?;
        let mut maxn = r.i32(what)?;
        let _lr_update_rate = r.i32(what)?;
        let _t = r.f64(what)?;
        let loss = match loss {
            1 => LossKind::HierarchicalSoftmax,
            2 => LossKind::NegativeSampling,
            3 => LossKind::Softmax,
            4 => LossKind::OneVsAll,
            _ => return Err(r.invalid(format!("unknown loss {loss}"))),
        };
        match model {
            3 => {}
            1 | 2 => {
                return Err(FastTextError::Unsupported(format!(
                    "a word-vector model ({}), not a classifier",
                    if model == 1 { "cbow" } else { "skipgram" }
                )))
            }
            _ => return Err(r.invalid(format!("unknown model type {model}"))),
        }
        if dim <= 0 || bucket < 0 {
            return Err(r.invalid(format!("dim {dim}, bucket {bucket}")));
        }
        if version == 11 {
            // fastText: old supervised models do not use char n-grams.
            maxn = 0;
        }
        let dim = dim as usize;

        let what = "dictionary";
        let size = r.i32(what)?;
        let nwords = r.i32(what)?;
        let nlabels = r.i32(what)?;
        let _ntokens = r.i64(what)?;
        let pruneidx_size = r.i64(what)?;
        if nwords < 0 || nlabels < 0 || nwords.checked_add(nlabels) != Some(size) {
            return Err(r.invalid(format!("dictionary of {size} entries: {nwords} words and {nlabels} labels")));
        }
        if nlabels == 0 {
            return Err(FastTextError::Unsupported("the model has no labels".into()));
        }
        let mut entries = Vec::with_capacity((size as usize).min(1 << 16));
        let mut counts = Vec::with_capacity((nlabels as usize).min(1 << 16));
        for i in 0..size {
            let mut word = Vec::new();
            r.cstr(&mut word, "dictionary entry")?;
            let count = r.i64("dictionary entry")?;
            let kind = r.u8("dictionary entry")?;
            let expected = u8::from(i >= nwords);
            if kind != expected {
                return Err(r.invalid(format!(
                    "dictionary entry {i} has type {kind}, expected {expected} (words first, then labels)"
                )));
            }
            if i >= nwords {
                counts.push(count);
            }
            entries.push(word);
        }
        let mut pairs = Vec::new();
        for _ in 0..pruneidx_size.max(0) {
            let k = r.i32("pruned n-gram index")?;
            let v = r.i32("pruned n-gram index")?;
            pairs.push((k, v));
        }

        let quant_input = r.bool("input matrix flag")?;
        if !quant_input && pruneidx_size >= 0 {
            return Err(r.invalid("pruned dictionary with a dense input matrix (fastText rejects it too)"));
        }
        let input = Input::read(&mut r, quant_input, decode_limit)?;
        let (in_rows, in_cols) = input.shape();
        if in_cols != dim {
            return Err(r.invalid(format!("input matrix has {in_cols} columns, dim is {dim}")));
        }
        let qout = r.bool("output matrix flag")?;
        let output = Output::read(&mut r, quant_input && qout, nlabels as usize, dim)?;

        // Every row prediction can reach must exist: checked once here, not per lookup.
        let nwords_u = nwords as usize;
        if in_rows < nwords_u {
            return Err(r.invalid(format!("input matrix has {in_rows} rows for {nwords} words")));
        }
        let (minn_u, maxn_u) = (minn as i64 as u64, maxn as i64 as u64);
        let hashing = bucket > 0 && ((maxn_u >= 1 && minn_u <= maxn_u) || word_ngrams > 1);
        let buckets = if pruneidx_size < 0 {
            if hashing && in_rows - nwords_u < bucket as usize {
                return Err(r.invalid(format!(
                    "input matrix has {in_rows} rows for {nwords} words and {bucket} n-gram buckets"
                )));
            }
            Buckets::All
        } else {
            for &(k, v) in &pairs {
                if (0..bucket).contains(&k) && (v < 0 || v as usize >= in_rows - nwords_u) {
                    return Err(r.invalid(format!("pruned n-gram bucket {k} maps to row {v} beyond the input matrix")));
                }
            }
            Buckets::pruned(&pairs, bucket)
        };

        let labels = entries[nwords_u..].iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
        let head = match loss {
            LossKind::Softmax => Head::Softmax,
            LossKind::OneVsAll | LossKind::NegativeSampling => Head::Sigmoid(loss::sigmoid_table()),
            LossKind::HierarchicalSoftmax => {
                Head::Hs(Tree::build(&counts).ok_or_else(|| r.invalid("label counts do not form a Huffman tree"))?)
            }
        };
        let dict = Dictionary::new(entries, nwords as u32, minn, maxn, bucket as u32, word_ngrams, buckets);
        Ok(FastText { labels, dim, loss, dict, input, output, head })
    }

    /// The labels, as stored (e.g. `__label__en`); [`Prediction::label`] indexes this.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Dimension of the embeddings.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of words in the vocabulary (after any `-cutoff` pruning).
    pub fn words(&self) -> usize {
        self.dict.nwords as usize
    }

    /// The loss the model was trained with.
    pub fn loss(&self) -> LossKind {
        self.loss
    }

    /// The `k` most probable labels with probability >= `threshold`, best first, as Python's
    /// `model.predict(text.replace("\n", " "), k, threshold)`. `k >= labels().len()` is
    /// Python's `k=-1` (all labels, except that hierarchical softmax, like fastText, drops
    /// those below about 1e-5 even at threshold 0); `k == 0` gives none.
    pub fn predict(&self, text: &str, k: usize, threshold: f32) -> Vec<Prediction> {
        self.predictor().predict(text, k, threshold).to_vec()
    }

    /// A predictor with its own buffers, to predict many texts without allocating.
    pub fn predictor(&self) -> Predictor<'_> {
        Predictor {
            model: self,
            hidden: vec![0.0; self.dim],
            hashes: Vec::new(),
            word: Vec::new(),
            out: vec![0.0; self.output.rows],
            heap: Vec::new(),
            stack: Vec::new(),
            results: Vec::new(),
        }
    }
}

/// Reusable prediction buffers for one thread; see [`FastText::predictor`].
pub struct Predictor<'m> {
    model: &'m FastText,
    hidden: Vec<f32>,
    hashes: Vec<u32>,
    word: Vec<u8>,
    out: Vec<f32>,
    heap: Vec<Scored>,
    stack: Vec<(u32, f32)>,
    results: Vec<Prediction>,
}

/// fastText's word separators (`Dictionary::readWord`).
#[inline(always)]
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0B | 0x0C | 0)
}

impl Predictor<'_> {
    /// Same as [`FastText::predict`], into this predictor's buffer.
    pub fn predict(&mut self, text: &str, k: usize, threshold: f32) -> &[Prediction] {
        self.predict_bytes(text.as_bytes(), k, threshold)
    }

    /// Predicts from raw bytes, as fastText reads them (it never decodes UTF-8).
    pub fn predict_bytes(&mut self, text: &[u8], k: usize, threshold: f32) -> &[Prediction] {
        self.results.clear();
        self.heap.clear();
        let m = self.model;
        let k = k.min(m.labels.len());
        if k == 0 || !self.hidden(text) {
            return &self.results;
        }
        m.output.dots(&self.hidden, &mut self.out);
        match &m.head {
            Head::Softmax => {
                loss::softmax(&mut self.out);
                loss::find_k_best(k, threshold, &self.out, &mut self.heap);
            }
            Head::Sigmoid(table) => {
                for o in self.out.iter_mut() {
                    *o = loss::sigmoid(table, *o);
                }
                loss::find_k_best(k, threshold, &self.out, &mut self.heap);
            }
            Head::Hs(tree) => tree.dfs(k, threshold, &self.out, &mut self.heap, &mut self.stack),
        }
        self.results.extend(self.heap.iter().map(|&(s, i)| Prediction { label: i as usize, prob: s.exp() }));
        &self.results
    }

    /// The averaged input rows of the line (`Dictionary::getLine` + `computeHidden`), false
    /// when the line has none (fastText then predicts nothing).
    fn hidden(&mut self, text: &[u8]) -> bool {
        let m = self.model;
        let n = match &m.input {
            // Common widths sum in registers; the order of additions per column is the same.
            Input::Dense { data, cols: 16, .. } => self.sum_fixed::<16>(data, text),
            Input::Dense { data, cols: 8, .. } => self.sum_fixed::<8>(data, text),
            Input::Dense { data, cols: 32, .. } => self.sum_fixed::<32>(data, text),
            Input::Dense { data, cols: 64, .. } => self.sum_fixed::<64>(data, text),
            input => {
                let mut sink = AnySink { input, x: std::mem::take(&mut self.hidden), n: 0 };
                sink.x.fill(0.0);
                read_line(&m.dict, text, &mut sink, &mut self.hashes, &mut self.word);
                self.hidden = sink.x;
                sink.n
            }
        };
        if n == 0 {
            return false;
        }
        // Vector::mul(1.0 / n): the factor is rounded to f32 first.
        let inv = (1.0f64 / n as f64) as f32;
        for v in self.hidden.iter_mut() {
            *v *= inv;
        }
        true
    }

    fn sum_fixed<const D: usize>(&mut self, data: &[f32], text: &[u8]) -> usize {
        let mut sink = FixedSink::<D> { data, x: [0.0; D], n: 0 };
        read_line(&self.model.dict, text, &mut sink, &mut self.hashes, &mut self.word);
        self.hidden.copy_from_slice(&sink.x);
        sink.n
    }
}

/// Receives the input rows of a line, in fastText's order.
trait Sink {
    fn add(&mut self, row: u32);
}

/// A register-resident accumulator for a common width.
struct FixedSink<'a, const D: usize> {
    data: &'a [f32],
    x: [f32; D],
    n: usize,
}

impl<const D: usize> Sink for FixedSink<'_, D> {
    #[inline(always)]
    fn add(&mut self, row: u32) {
        let start = row as usize * D;
        // Rows were bounds-checked at load; a miss here would be a bug, not bad input.
        if let Some(src) = self.data.get(start..start + D) {
            for (xv, v) in self.x.iter_mut().zip(src) {
                *xv += *v;
            }
        }
        self.n += 1;
    }
}

struct AnySink<'a> {
    input: &'a Input,
    x: Vec<f32>,
    n: usize,
}

impl Sink for AnySink<'_> {
    #[inline(always)]
    fn add(&mut self, row: u32) {
        self.input.add_row(&mut self.x, row);
        self.n += 1;
    }
}

/// `Dictionary::getLine` on one line: every token's rows, then the word n-grams'.
#[inline(always)]
fn read_line<S: Sink>(dict: &Dictionary, text: &[u8], sink: &mut S, hashes: &mut Vec<u32>, word: &mut Vec<u8>) {
    hashes.clear();
    let mut i = 0;
    let mut ended = false;
    while i < text.len() {
        while i < text.len() && is_space(text[i]) {
            i += 1;
        }
        if i == text.len() {
            break;
        }
        let start = i;
        while i < text.len() && !is_space(text[i]) {
            i += 1;
        }
        let token = &text[start..i];
        add_token(dict, token, sink, hashes, word);
        // fastText stops reading the line at an end-of-sentence token.
        if token == EOS {
            ended = true;
            break;
        }
    }
    if !ended {
        // The newline the Python binding appends reads as "</s>".
        add_token(dict, EOS, sink, hashes, word);
    }
    dict.word_ngrams(hashes, |r| sink.add(r));
}

/// One token of `getLine`: its input rows, and its hash for word n-grams when it is a word.
#[inline(always)]
fn add_token<S: Sink>(dict: &Dictionary, token: &[u8], sink: &mut S, hashes: &mut Vec<u32>, word: &mut Vec<u8>) {
    let h = hash(token);
    match dict.lookup(token, h) {
        Lookup::Word(id) => {
            if dict.subwords {
                for &r in dict.word_rows(id) {
                    sink.add(r);
                }
            } else {
                sink.add(id);
            }
            hashes.push(h);
        }
        Lookup::Label => {}
        Lookup::Unknown => {
            if token != EOS {
                word.clear();
                word.push(b'<');
                word.extend_from_slice(token);
                word.push(b'>');
                dict.char_ngrams(word, |r| sink.add(r));
            }
            hashes.push(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<FastText>();
        check::<FastTextError>();
    }
}
