//! `url_dedup`: one record per canonical URL; a persistent Bloom filter remembers the URLs of
//! earlier runs.
//!
//! Within a run, records are grouped exactly by the hash of the canonical URL, so the survivor
//! follows `keep` and no unique URL is lost. The Bloom filter (`expected_items`, `fp_rate`)
//! is the persistent index: a record whose URL it reports as seen is dropped as
//! `url_dedup:in_index` with an unknown `duplicate_of` (a Bloom filter stores no ids), and a
//! fraction `fp_rate` of new URLs is dropped by mistake.

use arrow_array::{Array, RecordBatch};
use curate_core::global::{DecisionColumns, Decisions, GlobalOperator, MapFiles, MapRows, ReduceContext};
use curate_core::operator::{BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator};
use curate_core::record::TEXT;
use curate_dedup::url::{url_key, UrlNormOptions};
use curate_dedup::BloomFilter;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_column, check_index, decision_columns, encode, group_reduce, reads, IndexHit, IndexSpec, Keep, Ranker};
use crate::util::string_column;

/// File of the Bloom filter inside `index.path`.
const INDEX_FILE: &str = "url.bloom";
/// Seed of the Bloom filter's hash functions; fixed so that saved filters stay readable.
const BLOOM_SEED: u64 = 0x7572_6c5f_6465_6470;

/// Parameters of `url_dedup`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlDedupParams {
    /// Column holding the URL; records with a null or unparseable URL are kept.
    #[serde(default = "default_field")]
    pub field: String,
    /// Survivor of a group: `first` (source order), `longest` or `highest:<column>`; ties go to the smallest id.
    #[serde(default)]
    #[schemars(with = "String")]
    pub keep: Keep,
    /// URLs the persistent Bloom filter is sized for.
    #[serde(default = "default_expected_items")]
    pub expected_items: u64,
    /// False-positive rate of the Bloom filter at `expected_items` URLs.
    #[serde(default = "default_fp_rate")]
    pub fp_rate: f64,
    /// Persistent Bloom filter `{path, mode: read|write|update}`: dedup against earlier runs.
    #[serde(default)]
    pub index: Option<IndexSpec>,
}

fn default_field() -> String {
    "url".into()
}
fn default_expected_items() -> u64 {
    10_000_000
}
fn default_fp_rate() -> f64 {
    0.001
}

/// URL dedup with a persistent Bloom filter.
pub struct UrlDedup {
    params: UrlDedupParams,
    opts: UrlNormOptions,
}

impl BuiltinOp for UrlDedup {
    const NAME: &'static str = "url_dedup";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Global;
    const SUMMARY: &'static str = "Keep one record per canonical URL; a persistent Bloom filter drops URLs seen by earlier runs";
    type Params = UrlDedupParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        check_column(&params.field, "field")?;
        check_index(&params.index, INDEX_FILE)?;
        let bytes = BloomFilter::memory_bytes(params.expected_items, params.fp_rate).map_err(|e| e.to_string())?;
        if params.index.is_some() {
            tracing::info!(
                bytes,
                expected_items = params.expected_items,
                fp_rate = params.fp_rate,
                "url_dedup: Bloom filter of {:.1} MiB",
                bytes as f64 / (1 << 20) as f64
            );
        }
        Ok(UrlDedup { params, opts: UrlNormOptions::default() })
    }
}

impl Operator for UrlDedup {
    fn columns(&self) -> Columns {
        Columns { reads: reads(&self.params.field, &self.params.keep, TEXT), writes: self.decision_columns().kept_writes() }
    }

    fn process(&self, _batch: RecordBatch) -> Result<OpOutput, OpError> {
        Err(OpError("url_dedup is a global step; the engine runs it through map and reduce".into()))
    }

    fn as_global(&self) -> Option<&dyn GlobalOperator> {
        Some(self)
    }
}

impl GlobalOperator for UrlDedup {
    fn map(&self, batch: &RecordBatch, out: &mut MapRows) -> Result<(), OpError> {
        let urls = string_column(batch, &self.params.field)?;
        let ranker = Ranker::new(batch, &self.params.keep, TEXT)?;
        let (mut order, mut buf) = (Vec::new(), Vec::new());
        for row in 0..batch.num_rows() {
            let sort = ranker.rank(row, &mut order)?;
            let key = if urls.is_null(row) { None } else { url_key(urls.value(row), &self.opts).ok() };
            let key_bytes = key.map(u128::to_be_bytes);
            encode(sort, &order, ranker.id(row), key_bytes.as_ref().map_or(&[][..], |k| &k[..]), &mut buf);
            out.push(&buf);
        }
        Ok(())
    }

    fn reduce(&self, input: &MapFiles, ctx: &ReduceContext, out: &mut Decisions) -> Result<(), OpError> {
        let err = |e: curate_dedup::DedupError| OpError(e.to_string());
        let ix = self.params.index.as_ref();
        let old = ix.map(|ix| ix.existing(INDEX_FILE)).transpose()?.flatten().map(|p| BloomFilter::load(&p)).transpose().map_err(err)?;
        let saves = ix.is_some_and(|ix| ix.saves());
        let mut new = match (&old, saves) {
            (Some(b), true) => Some(b.clone()),
            (None, true) => Some(BloomFilter::new(self.params.expected_items, self.params.fp_rate, BLOOM_SEED).map_err(err)?),
            (_, false) => None,
        };
        if let Some(b) = old.as_ref().or(new.as_ref()) {
            tracing::info!(bytes = b.num_bits() / 8, hashes = b.num_hashes(), "url_dedup: Bloom filter in memory");
        }
        group_reduce(
            input,
            ctx,
            out,
            ("url_dedup:duplicate", "url_dedup:in_index"),
            |k| old.as_ref().is_some_and(|b| b.contains(k)).then_some(IndexHit::Anonymous),
            |k, _| {
                if let Some(b) = new.as_mut() {
                    b.insert(k);
                }
            },
        )?;
        if let (Some(ix), Some(b)) = (ix, new) {
            let path = ix.target(INDEX_FILE)?;
            b.save(&path).map_err(err)?;
            tracing::info!(index = %path.display(), urls = b.inserted(), "url_dedup: Bloom filter saved");
        }
        Ok(())
    }

    fn decision_columns(&self) -> DecisionColumns {
        decision_columns("url", None)
    }
}
