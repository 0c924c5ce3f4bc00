//! Dedup operators (`exact_dedup`, `url_dedup`, `minhash_dedup`, `semantic_dedup`): global steps over the
//! algorithms of `curate-dedup`, plus what they share: the `keep` rule, the persistent
//! `index` option and the map payload.
//!
//! Which record of a group survives: the greatest `keep` value wins, ties go to the smallest
//! record id. `keep: first` means first in *source order*: the smallest
//! (`_source.file`, byte offset or row) pair, the file as the spec names it; ties cannot occur.
//! None of this depends on thread count, split size or the order of the input list.

pub mod exact;
pub mod minhash;
pub mod semantic;
pub mod url;

use std::path::PathBuf;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use curate_core::global::{DecisionColumns, RecordRef};
use curate_core::operator::OpError;
use curate_core::record::{ID, SOURCE};
use curate_dedup::SortKey;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::util::string_column;

/// Which record of a duplicate group survives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Keep {
    /// The first in source order (file, then byte offset or row).
    #[default]
    First,
    /// The longest text (UTF-8 bytes).
    Longest,
    /// The greatest value of a numeric column; nulls and NaN lose.
    Highest(String),
}

impl Keep {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "first" => Ok(Keep::First),
            "longest" => Ok(Keep::Longest),
            _ => match s.strip_prefix("highest:") {
                Some(col) if !col.trim().is_empty() => Ok(Keep::Highest(col.trim().to_string())),
                _ => Err(format!("`{s}` is not one of `first`, `longest`, `highest:<column>`")),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Keep::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Keep {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Keep::First => s.serialize_str("first"),
            Keep::Longest => s.serialize_str("longest"),
            Keep::Highest(c) => s.serialize_str(&format!("highest:{c}")),
        }
    }
}

/// How a step uses its persistent index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IndexMode {
    /// Drop records that duplicate the index; leave the index unchanged (it must exist).
    Read,
    /// Ignore any existing index; save this run's survivors as the new index.
    Write,
    /// Drop records that duplicate the index (if it exists), then add this run's survivors.
    Update,
}

/// A persistent dedup index: a directory reused across runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// Directory of the index (local path).
    pub path: PathBuf,
    /// `read`, `write` or `update`.
    #[serde(default = "default_mode")]
    pub mode: IndexMode,
}

fn default_mode() -> IndexMode {
    IndexMode::Update
}

impl IndexSpec {
    /// Whether to load the index before deduplicating.
    fn loads(&self) -> bool {
        self.mode != IndexMode::Write
    }

    /// Whether to save survivors into the index.
    fn saves(&self) -> bool {
        self.mode != IndexMode::Read
    }

    /// The file `name` inside the index directory, when an existing index should be loaded.
    fn existing(&self, name: &str) -> Result<Option<PathBuf>, OpError> {
        if !self.loads() {
            return Ok(None);
        }
        let file = self.path.join(name);
        match (file.exists(), self.mode) {
            (true, _) => Ok(Some(file)),
            (false, IndexMode::Read) => Err(OpError(format!(
                "index {} does not exist; create it with `mode: write` or `mode: update`",
                file.display()
            ))),
            (false, _) => Ok(None),
        }
    }

    /// Creates the index directory and returns the path of `name` in it.
    fn target(&self, name: &str) -> Result<PathBuf, OpError> {
        std::fs::create_dir_all(&self.path)
            .map_err(|e| OpError(format!("cannot create index directory {}: {e}", self.path.display())))?;
        Ok(self.path.join(name))
    }
}

/// Columns every dedup operator fills, prefixed by the operator (`exact`, `url`, `minhash`,
/// `semantic`); `similarity` names the column of the measured similarity, if any.
fn decision_columns(prefix: &str, similarity: Option<&str>) -> DecisionColumns {
    DecisionColumns {
        cluster_id: format!("{prefix}_cluster_id"),
        cluster_size: format!("{prefix}_cluster_size"),
        duplicate_of: "duplicate_of".into(),
        similarity: similarity.map(str::to_string),
    }
}

/// The survivor rank of a record: greater `sort` wins, then smaller `order`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rank<'a> {
    sort: SortKey,
    order: &'a [u8],
}

impl Rank<'_> {
    fn beats(&self, other: &Rank<'_>) -> bool {
        (self.sort, std::cmp::Reverse(self.order)) > (other.sort, std::cmp::Reverse(other.order))
    }
}

/// One record as a reduce sees it: rank, id, and the operator's own bytes.
struct Payload<'a> {
    rank: Rank<'a>,
    id: &'a str,
    rest: &'a [u8],
}

/// Encodes a payload: `sort u64 | order_len u32 | order | id_len u32 | id | rest`.
fn encode(sort: SortKey, order: &[u8], id: &str, rest: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&sort.0.to_le_bytes());
    out.extend_from_slice(&(order.len() as u32).to_le_bytes());
    out.extend_from_slice(order);
    out.extend_from_slice(&(id.len() as u32).to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(rest);
}

fn decode(b: &[u8]) -> Result<Payload<'_>, OpError> {
    let bad = || OpError("corrupt dedup map payload".into());
    let take = |at: usize, n: usize| b.get(at..at + n).ok_or_else(bad);
    let sort = u64::from_le_bytes(take(0, 8)?.try_into().map_err(|_| bad())?);
    let olen = u32::from_le_bytes(take(8, 4)?.try_into().map_err(|_| bad())?) as usize;
    let order = take(12, olen)?;
    let ilen = u32::from_le_bytes(take(12 + olen, 4)?.try_into().map_err(|_| bad())?) as usize;
    let id = std::str::from_utf8(take(16 + olen, ilen)?).map_err(|_| bad())?;
    let rest = &b[16 + olen + ilen..];
    Ok(Payload { rank: Rank { sort: SortKey(sort), order }, id, rest })
}

/// Computes per row of `batch`: the keep key, the order bytes and the id.
struct Ranker<'a> {
    ids: &'a StringArray,
    keep: &'a Keep,
    text: Option<&'a StringArray>,
    files: Option<&'a StringArray>,
    offsets: Option<(&'a arrow_array::UInt64Array, &'a arrow_array::UInt64Array)>,
    highest: Option<&'a dyn Array>,
}

impl<'a> Ranker<'a> {
    fn new(batch: &'a RecordBatch, keep: &'a Keep, text_column: &str) -> Result<Self, OpError> {
        let ids = string_column(batch, ID)?;
        let (mut files, mut offsets, mut text, mut highest) = (None, None, None, None);
        match keep {
            Keep::First => {
                let src = batch
                    .column_by_name(SOURCE)
                    .and_then(|c| c.as_struct_opt())
                    .ok_or_else(|| OpError(format!("`keep: first` needs the `{SOURCE}` column")))?;
                let field = |name: &str| src.column_by_name(name);
                files = field("file").and_then(|c| c.as_string_opt::<i32>());
                let off = field("byte_offset").and_then(|c| c.as_primitive_opt::<UInt64Type>());
                let row = field("row").and_then(|c| c.as_primitive_opt::<UInt64Type>());
                offsets = off.zip(row);
                if files.is_none() || offsets.is_none() {
                    return Err(OpError(format!("`{SOURCE}` lacks `file`, `byte_offset` or `row`")));
                }
            }
            Keep::Longest => text = Some(string_column(batch, text_column)?),
            Keep::Highest(col) => {
                let c = batch.column_by_name(col).ok_or_else(|| OpError(format!("column `{col}` is missing")))?;
                highest = Some(c.as_ref());
            }
        }
        Ok(Ranker { ids, keep, text, files, offsets, highest })
    }

    /// The keep key of `row` and its order bytes, written into `order`.
    fn rank(&self, row: usize, order: &mut Vec<u8>) -> Result<SortKey, OpError> {
        order.clear();
        let id = self.ids.value(row);
        let sort = match self.keep {
            Keep::First => {
                if let (Some(files), Some((off, r))) = (self.files, self.offsets) {
                    order.extend_from_slice(files.value(row).as_bytes());
                    order.push(0);
                    let pos = if off.is_null(row) { r.value(row) } else { off.value(row) };
                    order.extend_from_slice(&pos.to_be_bytes());
                }
                SortKey::FIRST
            }
            Keep::Longest => SortKey::from_len(self.text.map_or(0, |t| if t.is_null(row) { 0 } else { t.value(row).len() })),
            Keep::Highest(col) => self.highest.map_or(Ok(SortKey(0)), |c| numeric_key(c, row, col))?,
        };
        order.extend_from_slice(id.as_bytes());
        Ok(sort)
    }

    fn id(&self, row: usize) -> &'a str {
        self.ids.value(row)
    }
}

/// Sort key of a numeric cell; nulls rank below every value.
fn numeric_key(c: &dyn Array, row: usize, col: &str) -> Result<SortKey, OpError> {
    if c.is_null(row) {
        return Ok(SortKey(0));
    }
    Ok(match c.data_type() {
        DataType::Int64 => SortKey::from_i64(c.as_primitive::<Int64Type>().value(row)),
        DataType::Int32 => SortKey::from_i64(i64::from(c.as_primitive::<Int32Type>().value(row))),
        DataType::UInt64 => SortKey::from_f64(c.as_primitive::<UInt64Type>().value(row) as f64),
        DataType::UInt32 => SortKey::from_i64(i64::from(c.as_primitive::<UInt32Type>().value(row))),
        DataType::Float64 => SortKey::from_f64(c.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => SortKey::from_f64(f64::from(c.as_primitive::<Float32Type>().value(row))),
        DataType::Boolean => SortKey(u64::from(c.as_boolean().value(row)) + 1),
        other => return Err(OpError(format!("`keep: highest:{col}` needs a numeric column; `{col}` is {other}"))),
    }
    .max(SortKey(1)))
}

/// A record waiting in a group: where it is, its rank and id.
struct Member {
    at: RecordRef,
    sort: SortKey,
    order: Vec<u8>,
    id: String,
}

impl Member {
    fn rank(&self) -> Rank<'_> {
        Rank { sort: self.sort, order: &self.order }
    }
}

/// Spill payload of a member: `task u32 | row u64 | encoded payload`.
fn member_bytes(at: RecordRef, p: &Payload<'_>, out: &mut Vec<u8>) {
    let mut enc = Vec::new();
    encode(p.rank.sort, p.rank.order, p.id, &[], &mut enc);
    out.clear();
    out.extend_from_slice(&at.task.to_le_bytes());
    out.extend_from_slice(&at.row.to_le_bytes());
    out.extend_from_slice(&enc);
}

fn member_from(b: &[u8]) -> Result<Member, OpError> {
    let bad = || OpError("corrupt dedup spill record".into());
    let task = u32::from_le_bytes(b.get(0..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
    let row = u64::from_le_bytes(b.get(4..12).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
    let p = decode(b.get(12..).ok_or_else(bad)?)?;
    Ok(Member { at: RecordRef { task, row }, sort: p.rank.sort, order: p.rank.order.to_vec(), id: p.id.to_string() })
}

/// What an index says about a key: a duplicate of a known id, of an unknown one, or new.
enum IndexHit {
    /// The key belongs to an indexed record with this id.
    Id(String),
    /// The key was seen before, by whom is not recorded (Bloom filter).
    Anonymous,
}

/// Exact grouping by a 16-byte key through the bounded-memory spill: one survivor per key,
/// or none when the index already holds the key. `survivor` sees each kept key once.
fn group_reduce(
    input: &curate_core::global::MapFiles,
    ctx: &curate_core::global::ReduceContext,
    out: &mut curate_core::global::Decisions,
    reasons: (&str, &str),
    index: impl Fn(&[u8]) -> Option<IndexHit>,
    mut survivor: impl FnMut(&[u8], &str),
) -> Result<(), OpError> {
    use curate_core::global::Decision;
    use curate_dedup::spill::SpillWriter;
    let dedup_err = |e: curate_dedup::DedupError| OpError(e.to_string());
    let config = spill_config(ctx, input.total_bytes());
    let mut spill = SpillWriter::new(&config).map_err(dedup_err)?;
    let mut buf = Vec::new();
    input.for_each(|at, bytes| {
        let p = decode(bytes)?;
        // Records without a key (no URL, unparseable URL) are never duplicates.
        if p.rest.len() == 16 {
            member_bytes(at, &p, &mut buf);
            spill.push(p.rest, &buf).map_err(dedup_err)?;
        }
        Ok(())
    })?;
    let reader = spill.finish().map_err(dedup_err)?;
    let mut members = Vec::new();
    for part in 0..reader.num_partitions() {
        let part = reader.read_partition(part).map_err(dedup_err)?;
        for group in part.groups() {
            members.clear();
            for b in group.payloads() {
                members.push(member_from(b)?);
            }
            let hit = index(group.key());
            if members.len() == 1 && hit.is_none() {
                survivor(group.key(), &members[0].id);
                continue;
            }
            let size = (members.len() + usize::from(hit.is_some())) as u64;
            let best = match hit {
                Some(_) => None,
                None => {
                    let mut best = 0;
                    for (i, m) in members.iter().enumerate() {
                        if m.rank().beats(&members[best].rank()) {
                            best = i;
                        }
                    }
                    Some(best)
                }
            };
            let (reason, winner) = match (&hit, best) {
                (Some(IndexHit::Id(id)), _) => (reasons.1, Some(id.clone())),
                (Some(IndexHit::Anonymous), _) => (reasons.1, None),
                (None, Some(b)) => (reasons.0, Some(members[b].id.clone())),
                (None, None) => (reasons.0, None),
            };
            if let Some(b) = best {
                survivor(group.key(), &members[b].id);
            }
            for (i, m) in members.iter().enumerate() {
                let kept = best == Some(i);
                out.push(
                    m.at,
                    Decision {
                        drop_reason: (!kept).then(|| reason.to_string()),
                        cluster_id: winner.clone(),
                        cluster_size: size,
                        similarity: None,
                    },
                );
            }
        }
    }
    Ok(())
}

/// Spill settings for a reduce over `input_bytes` of spilled records within the memory limit:
/// at most a quarter of the budget (and never more than 64 MiB, past which bigger buffers buy
/// nothing) buffers the map side, and partitions are small enough that one, with its sort,
/// fits in half of it.
fn spill_config(ctx: &curate_core::global::ReduceContext, input_bytes: u64) -> curate_dedup::SpillConfig {
    let limit = ctx.memory_limit.max(1 << 16);
    let partitions = (input_bytes.saturating_mul(2) / (limit / 2)).clamp(1, 4096) as usize;
    let buffers = (limit / 4).min(64 << 20) as usize;
    tracing::info!(partitions, input_bytes, memory_limit = limit, "dedup reduce: spill plan");
    curate_dedup::SpillConfig { dir: ctx.scratch.clone(), partitions, memory_limit: buffers.max(partitions * 64) }
}

/// Checks a `text`-like column parameter names a column.
fn check_column(name: &str, what: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("`{what}` must name a column"));
    }
    Ok(())
}

/// Columns a dedup step reads: its own plus what `keep` needs (`text` is what `longest`
/// measures).
fn reads(own: &str, keep: &Keep, text: &str) -> Vec<String> {
    let mut r = vec![ID.to_string(), own.to_string()];
    match keep {
        Keep::First => r.push(SOURCE.to_string()),
        Keep::Longest => r.push(text.to_string()),
        Keep::Highest(c) => r.push(c.clone()),
    }
    r.dedup();
    r
}

/// Whether a path parameter points somewhere usable before the run starts.
fn check_index(index: &Option<IndexSpec>, file: &str) -> Result<(), String> {
    let Some(ix) = index else { return Ok(()) };
    if ix.path.as_os_str().is_empty() {
        return Err("`index.path` must not be empty".into());
    }
    if ix.mode == IndexMode::Read && !ix.path.join(file).exists() {
        return Err(format!(
            "`index.path`: {} holds no index (missing {file}); use `mode: write` or `mode: update` to create one",
            ix.path.display()
        ));
    }
    if ix.path.exists() && !ix.path.is_dir() {
        return Err(format!("`index.path`: {} is a file, not an index directory", ix.path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_parses_and_round_trips() {
        for (s, k) in [("first", Keep::First), ("longest", Keep::Longest), ("highest:score", Keep::Highest("score".into()))] {
            let parsed: Keep = serde_json::from_value(serde_json::json!(s)).unwrap();
            assert_eq!(parsed, k);
            assert_eq!(serde_json::to_value(&parsed).unwrap(), serde_json::json!(s));
        }
        for bad in ["highest:", "highest: ", "newest", ""] {
            let err = serde_json::from_value::<Keep>(serde_json::json!(bad)).unwrap_err().to_string();
            assert!(err.contains("is not one of `first`, `longest`, `highest:<column>`"), "{bad}: {err}");
        }
    }

    #[test]
    fn payload_round_trips_and_rejects_truncation() {
        let mut buf = Vec::new();
        encode(SortKey(42), b"file\0order", "id-ü", b"rest", &mut buf);
        let p = decode(&buf).unwrap();
        assert_eq!((p.rank.sort, p.rank.order, p.id, p.rest), (SortKey(42), &b"file\0order"[..], "id-ü", &b"rest"[..]));
        for cut in 0..buf.len() - 4 {
            assert!(decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn rank_prefers_greater_key_then_smaller_order() {
        let r = |sort, order: &'static [u8]| Rank { sort: SortKey(sort), order };
        assert!(r(2, b"b").beats(&r(1, b"a")));
        assert!(r(1, b"a").beats(&r(1, b"b")));
        assert!(!r(1, b"b").beats(&r(1, b"a")));
        assert!(!r(1, b"a").beats(&r(1, b"a")));
    }
}
