//! `exact_dedup`: one record per normalised-content hash.

use arrow_array::{Array, RecordBatch};
use curate_core::global::{DecisionColumns, Decisions, GlobalOperator, MapFiles, MapRows, ReduceContext};
use curate_core::operator::{BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator};
use curate_dedup::{content_hash, KeyIndex, TextNorm};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_column, check_index, decision_columns, encode, group_reduce, reads, IndexHit, IndexSpec, Keep, Ranker};
use crate::util::string_column;

/// File of the index inside `index.path`.
const INDEX_FILE: &str = "exact.idx";

/// Text normalisation before hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// Bytes as they are.
    None,
    /// Whitespace runs collapsed to one space, ends trimmed.
    Whitespace,
    /// Lowercased, punctuation removed, whitespace collapsed.
    #[default]
    LowercasePunct,
}

impl Normalization {
    /// The `curate-dedup` equivalent.
    pub fn text_norm(self) -> TextNorm {
        match self {
            Normalization::None => TextNorm::None,
            Normalization::Whitespace => TextNorm::Whitespace,
            Normalization::LowercasePunct => TextNorm::LowercasePunct,
        }
    }
}

/// Parameters of `exact_dedup`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExactDedupParams {
    /// Column holding the content.
    #[serde(default = "crate::util::text_column")]
    pub column: String,
    /// `none`, `whitespace` or `lowercase_punct` (lowercase, no punctuation, collapsed spaces).
    #[serde(default)]
    pub normalization: Normalization,
    /// Survivor of a group: `first` (source order), `longest` or `highest:<column>`; ties go to the smallest id.
    #[serde(default)]
    #[schemars(with = "String")]
    pub keep: Keep,
    /// Persistent index `{path, mode: read|write|update}`: dedup against earlier runs.
    #[serde(default)]
    pub index: Option<IndexSpec>,
}

/// Exact dedup over a hash of normalised content.
pub struct ExactDedup {
    params: ExactDedupParams,
}

impl BuiltinOp for ExactDedup {
    const NAME: &'static str = "exact_dedup";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Global;
    const SUMMARY: &'static str = "Keep one record per normalised-content hash; duplicates go to rejects with the id they duplicate";
    type Params = ExactDedupParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        check_column(&params.column, "column")?;
        check_index(&params.index, INDEX_FILE)?;
        Ok(ExactDedup { params })
    }
}

impl Operator for ExactDedup {
    fn columns(&self) -> Columns {
        Columns { reads: reads(&self.params.column, &self.params.keep, &self.params.column), writes: self.decision_columns().kept_writes() }
    }

    fn process(&self, _batch: RecordBatch) -> Result<OpOutput, OpError> {
        Err(OpError("exact_dedup is a global step; the engine runs it through map and reduce".into()))
    }

    fn as_global(&self) -> Option<&dyn GlobalOperator> {
        Some(self)
    }
}

impl GlobalOperator for ExactDedup {
    fn map(&self, batch: &RecordBatch, out: &mut MapRows) -> Result<(), OpError> {
        let text = string_column(batch, &self.params.column)?;
        let ranker = Ranker::new(batch, &self.params.keep, &self.params.column)?;
        let norm = self.params.normalization.text_norm();
        let (mut order, mut buf) = (Vec::new(), Vec::new());
        for row in 0..batch.num_rows() {
            let sort = ranker.rank(row, &mut order)?;
            let hash = content_hash(if text.is_null(row) { "" } else { text.value(row) }, norm);
            encode(sort, &order, ranker.id(row), &hash.to_be_bytes(), &mut buf);
            out.push(&buf);
        }
        Ok(())
    }

    fn reduce(&self, input: &MapFiles, ctx: &ReduceContext, out: &mut Decisions) -> Result<(), OpError> {
        let err = |e: curate_dedup::DedupError| OpError(e.to_string());
        let ix = self.params.index.as_ref();
        let old = match ix.map(|ix| ix.existing(INDEX_FILE)).transpose()?.flatten() {
            Some(path) => KeyIndex::load(&path).map_err(err)?,
            None => KeyIndex::new(),
        };
        let mut new = if ix.is_some_and(|ix| ix.loads()) { old.clone() } else { KeyIndex::new() };
        let saves = ix.is_some_and(|ix| ix.saves());
        let key_of = |k: &[u8]| <[u8; 16]>::try_from(k).map(u128::from_be_bytes).unwrap_or_default();
        group_reduce(
            input,
            ctx,
            out,
            ("exact_dedup:duplicate", "exact_dedup:in_index"),
            |k| old.get(key_of(k)).map(|id| IndexHit::Id(id.to_string())),
            |k, id| {
                if saves {
                    new.insert(key_of(k), id);
                }
            },
        )?;
        if let (Some(ix), true) = (ix, saves) {
            let path = ix.target(INDEX_FILE)?;
            new.save(&path).map_err(err)?;
            tracing::info!(index = %path.display(), keys = new.len(), "exact_dedup: index saved");
        }
        Ok(())
    }

    fn decision_columns(&self) -> DecisionColumns {
        decision_columns("exact", None)
    }
}
