//! `semantic_dedup`: removes records whose embeddings are nearly parallel (cosine at least
//! `1 - eps`), paraphrases MinHash misses (`curate_dedup::semantic`).
//!
//! The map embeds each text with `model` (or reads `embedding_column`, e.g. from an `embed`
//! step) and sends the unit vector with the record's rank and id; the reduce writes the
//! vectors to a scratch file (read back by record), orders records canonically (by their
//! `keep` order bytes, so task order does not matter), clusters with seeded k-means and
//! compares within clusters. Memory holds per record its id and rank (about 100 bytes plus the
//! id), plus the k-means sample and one cluster's vectors per thread.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use curate_core::global::{Decision, DecisionColumns, Decisions, GlobalOperator, MapFiles, MapRows, RecordRef, ReduceContext};
use curate_core::operator::{BuildContext, BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator};
use curate_dedup::semantic::{semantic_dedup, SemanticParams, VectorSource};
use curate_dedup::{DedupError, SortKey};
use curate_embed::{EmbedOptions, Embedder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_column, decision_columns, decode, encode, reads, Keep, Ranker};
use crate::models::load_encoder;
use crate::util::string_column;

/// Parameters of `semantic_dedup`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SemanticDedupParams {
    /// Column holding the text (embedded with `model`; measured by `keep: longest`).
    #[serde(default = "crate::util::text_column")]
    pub column: String,
    /// Embedding model directory (as for `embed`); set this or `embedding_column`.
    #[serde(default)]
    pub model: Option<String>,
    /// Column of vectors computed by an earlier step (fixed-size list of float); set this or
    /// `model`.
    #[serde(default)]
    pub embedding_column: Option<String>,
    /// Records whose cosine similarity is at least `1 - eps` are duplicates.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// k-means clusters; 0 picks one per 1,000 records.
    #[serde(default)]
    pub clusters: usize,
    /// Lloyd iterations at most.
    #[serde(default = "default_iterations")]
    pub iterations: usize,
    /// Seed of the k-means initialisation.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Survivor of a group: `first` (source order), `longest` or `highest:<column>`; ties go to the smallest id.
    #[serde(default)]
    #[schemars(with = "String")]
    pub keep: Keep,
}

fn default_eps() -> f64 {
    SemanticParams::default().eps
}
fn default_iterations() -> usize {
    SemanticParams::default().iterations
}
fn default_seed() -> u64 {
    SemanticParams::default().seed
}

/// Semantic near-duplicate removal.
pub struct SemanticDedup {
    params: SemanticDedupParams,
    algorithm: SemanticParams,
    embedder: Option<Embedder>,
}

impl BuiltinOp for SemanticDedup {
    const NAME: &'static str = "semantic_dedup";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Global;
    const SUMMARY: &'static str = "Remove semantic near-duplicates: embeddings, seeded k-means, cosine >= 1 - eps within clusters";
    type Params = SemanticDedupParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        Self::new_in(params, &BuildContext::default())
    }

    fn new_in(params: Self::Params, ctx: &BuildContext) -> Result<Self, String> {
        check_column(&params.column, "column")?;
        let algorithm = SemanticParams {
            eps: params.eps,
            clusters: params.clusters,
            iterations: params.iterations,
            seed: params.seed,
            ..SemanticParams::default()
        };
        algorithm.validate().map_err(|e| e.to_string())?;
        let embedder = match (&params.model, &params.embedding_column) {
            (Some(model), None) => Some(load_encoder(Embedder::load, model, ctx, EmbedOptions::default())?),
            (None, Some(column)) => {
                check_column(column, "embedding_column")?;
                None
            }
            _ => return Err("set exactly one of `model` (embed here) and `embedding_column` (vectors of an earlier step)".into()),
        };
        Ok(SemanticDedup { params, algorithm, embedder })
    }
}

impl Operator for SemanticDedup {
    fn columns(&self) -> Columns {
        let own = self.params.embedding_column.as_deref().unwrap_or(&self.params.column);
        let mut reads = reads(own, &self.params.keep, &self.params.column);
        if matches!(self.params.keep, Keep::Longest) && !reads.contains(&self.params.column) {
            reads.push(self.params.column.clone());
        }
        Columns { reads, writes: self.decision_columns().kept_writes() }
    }

    fn process(&self, _batch: RecordBatch) -> Result<OpOutput, OpError> {
        Err(OpError("semantic_dedup is a global step; the engine runs it through map and reduce".into()))
    }

    fn as_global(&self) -> Option<&dyn GlobalOperator> {
        Some(self)
    }

    fn content_key(&self) -> Option<String> {
        self.embedder.as_ref().map(|e| format!("model {}", e.digest()))
    }
}

impl SemanticDedup {
    /// Unit vectors of the rows of `batch`, `dim` floats each.
    fn vectors(&self, batch: &RecordBatch) -> Result<(usize, Vec<f32>), OpError> {
        let (dim, mut data) = match (&self.embedder, &self.params.embedding_column) {
            (Some(embedder), _) => {
                let text = string_column(batch, &self.params.column)?;
                let texts: Vec<&str> = (0..batch.num_rows()).map(|r| if text.is_null(r) { "" } else { text.value(r) }).collect();
                (embedder.dim(), embedder.embed(&texts).map_err(|e| OpError(e.to_string()))?)
            }
            (None, Some(name)) => column_vectors(batch, name)?,
            (None, None) => return Err(OpError("semantic_dedup has neither model nor embedding_column".into())),
        };
        for v in data.chunks_exact_mut(dim.max(1)) {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        Ok((dim, data))
    }
}

/// The vectors of a fixed-size list column of float32 or float64; null rows are zero vectors
/// (similar to nothing, so always kept).
fn column_vectors(batch: &RecordBatch, name: &str) -> Result<(usize, Vec<f32>), OpError> {
    let col = batch.column_by_name(name).ok_or_else(|| OpError(format!("column `{name}` is missing")))?;
    let list = col
        .as_fixed_size_list_opt()
        .ok_or_else(|| OpError(format!("embedding_column `{name}` is {}, not a fixed-size list of floats", col.data_type())))?;
    let dim = list.value_length() as usize;
    let mut out = Vec::with_capacity(list.len() * dim);
    for row in 0..list.len() {
        if list.is_null(row) {
            out.extend(std::iter::repeat_n(0.0, dim));
            continue;
        }
        let v = list.value(row);
        match v.data_type() {
            DataType::Float32 => out.extend_from_slice(v.as_primitive::<Float32Type>().values()),
            DataType::Float64 => out.extend(v.as_primitive::<Float64Type>().values().iter().map(|&x| x as f32)),
            other => return Err(OpError(format!("embedding_column `{name}` holds {other}, not float32 or float64"))),
        }
    }
    Ok((dim, out))
}

/// Vectors in the reduce's scratch file, in arrival order; `order[i]` is where the i-th
/// record in canonical order arrived.
struct FileVectors {
    file: File,
    path: PathBuf,
    dim: usize,
    order: Vec<u32>,
}

impl VectorSource for FileVectors {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    fn read(&self, idx: usize, out: &mut [f32]) -> curate_dedup::Result<()> {
        let mut bytes = vec![0u8; self.dim * 4];
        let at = u64::from(self.order[idx]) * bytes.len() as u64;
        self.file.read_exact_at(&mut bytes, at).map_err(|e| DedupError::io(&self.path, e))?;
        out.iter_mut().zip(bytes.chunks_exact(4)).for_each(|(o, b)| *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        Ok(())
    }
}

/// A record in the reduce.
struct Entry {
    at: RecordRef,
    sort: SortKey,
    order: Box<[u8]>,
    id: Box<str>,
    arrival: u32,
}

impl GlobalOperator for SemanticDedup {
    fn map(&self, batch: &RecordBatch, out: &mut MapRows) -> Result<(), OpError> {
        let (dim, vectors) = self.vectors(batch)?;
        let ranker = Ranker::new(batch, &self.params.keep, &self.params.column)?;
        let (mut order, mut buf, mut rest) = (Vec::new(), Vec::new(), Vec::with_capacity(4 + dim * 4));
        for (row, v) in vectors.chunks_exact(dim.max(1)).enumerate().take(batch.num_rows()) {
            let sort = ranker.rank(row, &mut order)?;
            rest.clear();
            rest.extend_from_slice(&(dim as u32).to_le_bytes());
            v.iter().for_each(|x| rest.extend_from_slice(&x.to_le_bytes()));
            encode(sort, &order, ranker.id(row), &rest, &mut buf);
            out.push(&buf);
        }
        Ok(())
    }

    fn reduce(&self, input: &MapFiles, ctx: &ReduceContext, out: &mut Decisions) -> Result<(), OpError> {
        let io = |e: std::io::Error| OpError(format!("semantic_dedup scratch: {e}"));
        let path = ctx.scratch.join("vectors.f32");
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io)?);
        let mut entries: Vec<Entry> = Vec::new();
        let mut dim = None;
        input.for_each(|at, bytes| {
            let p = decode(bytes)?;
            let (d, v) = p.rest.split_at_checked(4).ok_or_else(|| OpError("corrupt semantic_dedup map payload".into()))?;
            let d = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
            if *dim.get_or_insert(d) != d || v.len() != d * 4 {
                return Err(OpError(format!("record {}: embedding of {} floats, others have {}", p.id, v.len() / 4, dim.unwrap_or(d))));
            }
            w.write_all(v).map_err(io)?;
            let arrival = u32::try_from(entries.len()).map_err(|_| OpError("semantic_dedup takes at most 4 billion records".into()))?;
            entries.push(Entry { at, sort: p.rank.sort, order: p.rank.order.into(), id: p.id.into(), arrival });
            Ok(())
        })?;
        w.flush().map_err(io)?;
        drop(w);
        entries.sort_by(|a, b| a.order.cmp(&b.order));
        let vectors = FileVectors { file: File::open(&path).map_err(io)?, path, dim: dim.unwrap_or(1), order: entries.iter().map(|e| e.arrival).collect() };
        let keys: Vec<SortKey> = entries.iter().map(|e| e.sort).collect();
        let decisions = semantic_dedup(&vectors, &keys, &self.algorithm).map_err(|e| OpError(e.to_string()))?;
        for (e, d) in entries.iter().zip(&decisions) {
            if d.group_size == 1 {
                continue;
            }
            out.push(
                e.at,
                Decision {
                    drop_reason: (!d.kept).then(|| "semantic_dedup:near_duplicate".to_string()),
                    cluster_id: Some(entries[d.survivor].id.to_string()),
                    cluster_size: d.group_size as u64,
                    similarity: (!d.kept).then_some(f64::from(d.cosine)),
                },
            );
        }
        Ok(())
    }

    fn decision_columns(&self) -> DecisionColumns {
        decision_columns("semantic", Some("cosine"))
    }
}
