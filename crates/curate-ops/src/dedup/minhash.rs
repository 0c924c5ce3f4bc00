//! `minhash_dedup`: near-duplicate removal with MinHash LSH, exact Jaccard verification of
//! candidate pairs and union-find clusters (`curate_dedup::MinHashDedup`).
//!
//! The map copies each record's text, rank and id; the reduce writes the texts to one scratch
//! file (read back by offset), orders records canonically (by their `keep` order bytes, so
//! task order does not matter) and runs the dedup. Band buckets go through the bounded-memory
//! spill; per record the reduce holds its id, rank and text offset (about 100 bytes plus the
//! id) and the candidate pairs.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use arrow_array::{Array, RecordBatch};
use curate_core::global::{Decision, DecisionColumns, Decisions, GlobalOperator, MapFiles, MapRows, RecordRef, ReduceContext};
use curate_core::operator::{BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator};
use curate_dedup::minhash::TextSource;
use curate_dedup::{DedupError, DocMeta, KeyIndex, LshIndex, MinHashDedup, MinHashParams, SortKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::exact::Normalization;
use super::{check_column, check_index, decision_columns, decode, encode, reads, spill_config, IndexSpec, Keep, Ranker};
use crate::util::string_column;

/// The LSH index inside `index.path`.
const INDEX_FILE: &str = "minhash.lsh";
/// Record ids of the LSH index's numeric ids.
const NAMES_FILE: &str = "minhash.ids";
/// Spill bytes per band key: frame header, 8-byte key, 4-byte record index.
const SPILL_BYTES_PER_KEY: u64 = 20;

/// Parameters of `minhash_dedup`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinHashDedupParams {
    /// Column holding the text.
    #[serde(default = "crate::util::text_column")]
    pub column: String,
    /// Words per shingle.
    #[serde(default = "default_ngram")]
    pub ngram: usize,
    /// LSH bands.
    #[serde(default = "default_bands")]
    pub bands: usize,
    /// MinHash rows per band (bands x rows 64-bit hashes per record).
    #[serde(default = "default_rows")]
    pub rows: usize,
    /// Minimum exact Jaccard of shingle sets for a candidate pair to be duplicates.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Check each LSH candidate pair's exact Jaccard against `threshold`; with `false` every
    /// candidate is a duplicate and `jaccard` holds the MinHash estimate.
    #[serde(default = "default_verify")]
    pub verify: bool,
    /// `whitespace` or `lowercase_punct` before shingling.
    #[serde(default)]
    pub normalization: Normalization,
    /// Survivor of a cluster: `first` (source order), `longest` or `highest:<column>`; ties go to the smallest id.
    #[serde(default)]
    #[schemars(with = "String")]
    pub keep: Keep,
    /// Persistent LSH index `{path, mode: read|write|update}`: dedup against earlier runs.
    #[serde(default)]
    pub index: Option<IndexSpec>,
}

fn default_ngram() -> usize {
    5
}
fn default_bands() -> usize {
    14
}
fn default_rows() -> usize {
    8
}
fn default_threshold() -> f64 {
    0.8
}
fn default_verify() -> bool {
    true
}

/// MinHash LSH near-duplicate removal.
pub struct MinHashDedupOp {
    params: MinHashDedupParams,
    lsh: MinHashParams,
}

impl BuiltinOp for MinHashDedupOp {
    const NAME: &'static str = "minhash_dedup";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Global;
    const SUMMARY: &'static str =
        "Remove near-duplicates: MinHash LSH candidates, exact Jaccard verification, union-find clusters";
    type Params = MinHashDedupParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        check_column(&params.column, "column")?;
        check_index(&params.index, INDEX_FILE)?;
        let lsh = MinHashParams {
            ngram: params.ngram,
            bands: params.bands,
            rows: params.rows,
            threshold: params.threshold,
            norm: params.normalization.text_norm(),
            ..MinHashParams::default()
        };
        lsh.validate().map_err(|e| e.to_string())?;
        Ok(MinHashDedupOp { params, lsh })
    }
}

impl Operator for MinHashDedupOp {
    fn columns(&self) -> Columns {
        Columns {
            reads: reads(&self.params.column, &self.params.keep, &self.params.column),
            writes: self.decision_columns().kept_writes(),
        }
    }

    fn process(&self, _batch: RecordBatch) -> Result<OpOutput, OpError> {
        Err(OpError("minhash_dedup is a global step; the engine runs it through map and reduce".into()))
    }

    fn as_global(&self) -> Option<&dyn GlobalOperator> {
        Some(self)
    }
}

/// A record in the reduce, in canonical order.
struct Entry {
    at: RecordRef,
    sort: SortKey,
    order: Box<[u8]>,
    id: Box<str>,
}

/// Texts in a scratch file, read back by offset.
struct FileTexts {
    file: File,
    path: PathBuf,
    spans: Vec<(u64, u32)>,
}

impl TextSource for FileTexts {
    fn len(&self) -> usize {
        self.spans.len()
    }

    fn text(&self, idx: usize, buf: &mut String) -> curate_dedup::Result<()> {
        let (off, len) = self.spans[idx];
        let mut bytes = std::mem::take(buf).into_bytes();
        bytes.resize(len as usize, 0);
        self.file.read_exact_at(&mut bytes, off).map_err(|e| DedupError::io(&self.path, e))?;
        *buf = String::from_utf8(bytes).map_err(|e| {
            DedupError::io(&self.path, std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()))
        })?;
        Ok(())
    }
}

impl GlobalOperator for MinHashDedupOp {
    fn map(&self, batch: &RecordBatch, out: &mut MapRows) -> Result<(), OpError> {
        let text = string_column(batch, &self.params.column)?;
        let ranker = Ranker::new(batch, &self.params.keep, &self.params.column)?;
        let (mut order, mut buf) = (Vec::new(), Vec::new());
        for row in 0..batch.num_rows() {
            let sort = ranker.rank(row, &mut order)?;
            let t = if text.is_null(row) { "" } else { text.value(row) };
            encode(sort, &order, ranker.id(row), t.as_bytes(), &mut buf);
            out.push(&buf);
        }
        Ok(())
    }

    fn reduce(&self, input: &MapFiles, ctx: &ReduceContext, out: &mut Decisions) -> Result<(), OpError> {
        let err = |e: DedupError| OpError(e.to_string());
        let io = |e: std::io::Error| OpError(format!("minhash_dedup scratch: {e}"));
        let path = ctx.scratch.join("texts.bin");
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io)?);
        let mut entries: Vec<(Entry, (u64, u32))> = Vec::new();
        let mut offset = 0u64;
        input.for_each(|at, bytes| {
            let p = decode(bytes)?;
            w.write_all(p.rest).map_err(io)?;
            let len = u32::try_from(p.rest.len()).map_err(|_| OpError(format!("record {} is over 4 GiB", p.id)))?;
            entries.push((
                Entry { at, sort: p.rank.sort, order: p.rank.order.into(), id: p.id.into() },
                (offset, len),
            ));
            offset += u64::from(len);
            Ok(())
        })?;
        w.flush().map_err(io)?;
        drop(w);
        // Canonical order: numeric ids follow it, so ties (smallest id) and clusters do not
        // depend on which task a record came from.
        entries.sort_by(|a, b| a.0.order.cmp(&b.0.order));
        let (entries, spans): (Vec<Entry>, Vec<(u64, u32)>) = entries.into_iter().unzip();
        let texts = FileTexts { file: File::open(&path).map_err(io)?, path, spans };

        let ix = self.params.index.as_ref();
        let (mut lsh, mut names) = match ix.map(|ix| ix.existing(INDEX_FILE)).transpose()?.flatten() {
            Some(p) => {
                let names_path = p.with_file_name(NAMES_FILE);
                (LshIndex::load(&p, &self.lsh).map_err(err)?, KeyIndex::load(&names_path).map_err(err)?)
            }
            None => (LshIndex::new(&self.lsh).map_err(err)?, KeyIndex::new()),
        };
        let base = lsh.ids().iter().max().map_or(0, |m| m + 1);
        let docs: Vec<DocMeta> =
            entries.iter().enumerate().map(|(i, e)| DocMeta { id: base + i as u64, sort_key: e.sort }).collect();
        let spill_bytes = entries.len() as u64 * self.lsh.bands as u64 * SPILL_BYTES_PER_KEY;
        let dedup = MinHashDedup::new(self.lsh.clone(), spill_config(ctx, spill_bytes))
            .map_err(err)?
            .with_verify(self.params.verify);
        let index = if ix.is_some() { Some(&mut lsh) } else { None };
        let decisions = dedup.run(&docs, &texts, index).map_err(err)?;

        let name = |n: u64| -> Option<String> {
            match n.checked_sub(base) {
                Some(i) => entries.get(i as usize).map(|e| e.id.to_string()),
                None => names.get(u128::from(n)).map(str::to_string),
            }
        };
        for (e, d) in entries.iter().zip(&decisions) {
            if d.kept && d.cluster_size == 1 {
                continue;
            }
            out.push(
                e.at,
                Decision {
                    drop_reason: (!d.kept).then(|| "minhash_dedup:near_duplicate".to_string()),
                    cluster_id: name(d.cluster_id),
                    cluster_size: d.cluster_size as u64,
                    similarity: d.jaccard,
                },
            );
        }
        if let Some(ix) = ix.filter(|ix| ix.saves()) {
            for (i, (e, d)) in entries.iter().zip(&decisions).enumerate() {
                if d.kept {
                    names.insert(u128::from(base + i as u64), &e.id);
                }
            }
            let p = ix.target(INDEX_FILE)?;
            lsh.save(&p).map_err(err)?;
            names.save(&ix.target(NAMES_FILE)?).map_err(err)?;
            tracing::info!(index = %p.display(), records = lsh.len(), "minhash_dedup: index saved");
        }
        Ok(())
    }

    fn decision_columns(&self) -> DecisionColumns {
        decision_columns("minhash", Some("jaccard"))
    }
}
