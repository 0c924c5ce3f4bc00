//! The operator contract: what every built-in or custom operator declares and does.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How an operator executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// One record in, zero or one out; streamed per shard.
    Map,
    /// Adds computed columns; streamed per shard, never drops.
    Annotate,
    /// Needs to see all records (dedup, mixing); runs as partition then reduce.
    Global,
}

/// An error raised by an operator while processing a batch.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpError(pub String);

/// Columns an operator reads and the columns it adds, known once its parameters are set.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    /// Columns that must exist before the operator runs.
    pub reads: Vec<String>,
    /// Columns the operator adds (or overwrites) with their types.
    pub writes: Vec<(String, DataType)>,
}

/// Per-row decisions of a filter: keep, or drop with a reason.
///
/// Reasons are interned: most filters drop for a handful of distinct reasons, so rows
/// carry a small index rather than a string each.
#[derive(Debug, Clone, Default)]
pub struct Verdicts {
    reasons: Vec<Arc<str>>,
    rows: Vec<u32>,
    /// Rows the operator failed on, with the error (a Python function raising, a service
    /// refusing a request): they go to quarantine with it, and the run goes on.
    failed: Vec<(Range<usize>, Arc<str>)>,
}

impl Verdicts {
    /// All `n` rows kept.
    pub fn keep_all(n: usize) -> Self {
        Verdicts { reasons: Vec::new(), rows: vec![0; n], failed: Vec::new() }
    }

    /// Every one of `n` rows failed in the operator with `error`: they are quarantined with
    /// it (and their ids), instead of the failure ending the run.
    pub fn fail_all(n: usize, error: &str) -> Self {
        let mut v = Verdicts::keep_all(n);
        v.fail_rows(0..n, error);
        v
    }

    /// Marks rows `rows` failed with `error` (see [`Verdicts::fail_all`]).
    pub fn fail_rows(&mut self, rows: Range<usize>, error: &str) {
        let n = self.rows.len();
        self.failed.push((rows.start.min(n)..rows.end.min(n), Arc::from(error)));
    }

    /// The rows the operator failed on, with their errors.
    pub fn failures(&self) -> &[(Range<usize>, Arc<str>)] {
        &self.failed
    }

    /// These verdicts without the failed rows, for the rows that go on.
    pub fn without_failures(&self) -> Self {
        let mut gone = vec![false; self.rows.len()];
        for (range, _) in &self.failed {
            gone[range.clone()].iter_mut().for_each(|g| *g = true);
        }
        let rows = self.rows.iter().zip(&gone).filter(|(_, g)| !**g).map(|(r, _)| *r).collect();
        Verdicts { reasons: self.reasons.clone(), rows, failed: Vec::new() }
    }

    /// Marks `row` dropped for `reason` (`operator:rule`).
    pub fn drop_row(&mut self, row: usize, reason: &str) {
        let idx = match self.reasons.iter().position(|r| &**r == reason) {
            Some(i) => i,
            None => {
                self.reasons.push(Arc::from(reason));
                self.reasons.len() - 1
            }
        };
        self.rows[row] = idx as u32 + 1;
    }

    /// The drop reason of `row`, or `None` when kept.
    pub fn reason(&self, row: usize) -> Option<&Arc<str>> {
        match self.rows[row] {
            0 => None,
            i => self.reasons.get(i as usize - 1),
        }
    }

    /// Number of rows the verdicts cover.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the verdicts cover no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether any row is dropped.
    pub fn any_dropped(&self) -> bool {
        self.rows.iter().any(|&r| r != 0)
    }

    /// The interned reasons, and per row 0 (kept) or one plus the index of its reason.
    pub(crate) fn codes(&self) -> (&[Arc<str>], &[u32]) {
        (&self.reasons, &self.rows)
    }

    /// Verdicts from the parts [`Verdicts::codes`] gives; `None` when a row names a reason
    /// that is not there.
    pub(crate) fn from_codes(reasons: Vec<Arc<str>>, rows: Vec<u32>) -> Option<Self> {
        rows.iter().all(|&r| r as usize <= reasons.len()).then_some(Verdicts { reasons, rows, failed: Vec::new() })
    }
}

/// What an operator returns for one batch: the (possibly rewritten or extended) batch, and
/// for filters the verdict of each row.
pub struct OpOutput {
    /// The batch after the operator, same row count as its input.
    pub batch: RecordBatch,
    /// Per-row keep/drop decisions; `None` keeps every row.
    pub verdicts: Option<Verdicts>,
}

/// A configured operator, ready to process batches. Must be deterministic.
pub trait Operator: Send + Sync {
    /// Columns read and written with the current parameters.
    fn columns(&self) -> Columns;
    /// Processes one batch.
    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError>;
    /// Digest of content the operator reads beyond its parameters (a word list file its
    /// parameters name, say), so cached outputs follow that content too.
    fn content_key(&self) -> Option<String> {
        None
    }
    /// The map and reduce of a global operator; the engine then never calls `process`.
    fn as_global(&self) -> Option<&dyn crate::global::GlobalOperator> {
        None
    }
}

/// A built-in operator: typed parameters plus a constructor. Implementing this and adding
/// one line to the operator list registers it.
pub trait BuiltinOp: Operator + Sized + 'static {
    /// Name used in specs (`op: length_filter`).
    const NAME: &'static str;
    /// Version; bump whenever outputs change for the same input and parameters.
    const VERSION: &'static str;
    /// Execution kind.
    const KIND: OpKind;
    /// One-line description shown by `curate ops`.
    const SUMMARY: &'static str;
    /// Typed parameters; unknown keys are rejected.
    type Params: DeserializeOwned + JsonSchema;
    /// Builds the operator, checking parameter values against each other.
    fn new(params: Self::Params) -> Result<Self, String>;
    /// Builds the operator where its pipeline lives; operators reading files their parameters
    /// name (models) resolve relative paths against `ctx.base_dir` here.
    fn new_in(params: Self::Params, ctx: &BuildContext) -> Result<Self, String> {
        let _ = ctx;
        Self::new(params)
    }
}

/// Why parameters were refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ParamError {
    /// A key that is not a parameter of the operator.
    #[error("unknown parameter `{name}`{hint}; parameters are: {known}")]
    Unknown {
        /// The offending key.
        name: String,
        /// ", did you mean `x`?" or empty.
        hint: String,
        /// The accepted keys.
        known: String,
    },
    /// A value of the wrong type or out of range, at a parameter path.
    #[error("parameter `{path}`: {message}")]
    Invalid {
        /// Parameter path (`min_chars`, `keep[1]`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The parameters are individually valid but not together.
    #[error("{0}")]
    Rejected(String),
}

impl ParamError {
    /// Path of the offending parameter, when one is known.
    pub fn path(&self) -> Option<&str> {
        match self {
            ParamError::Unknown { name, .. } => Some(name),
            ParamError::Invalid { path, .. } => Some(path),
            ParamError::Rejected(_) => None,
        }
    }
}

/// Documentation of one parameter, derived from the parameter type's schema.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ParamDoc {
    /// Parameter name.
    pub name: String,
    /// JSON type (`integer`, `string`, `array`, ...).
    pub ty: String,
    /// Default value as JSON, when the parameter is optional.
    pub default: Option<Value>,
    /// The doc comment of the field.
    pub doc: String,
}

/// What a constructor may need beyond its parameters: where the pipeline lives (to resolve
/// the relative paths of word lists, models or scripts) and which step it builds.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// Directory of the pipeline spec; relative paths in parameters start here.
    pub base_dir: std::path::PathBuf,
    /// The pipeline's name.
    pub pipeline: String,
    /// Index of the step being built.
    pub step: usize,
}

/// Builds a configured operator from a step's JSON parameters.
pub type BuildFn = Arc<dyn Fn(Value, &BuildContext) -> Result<Box<dyn Operator>, ParamError> + Send + Sync>;

/// Everything the registry knows about an operator. Names are owned, so operators defined at
/// run time (Python functions, remote services) register like built-ins.
#[derive(Clone)]
pub struct OpDescriptor {
    /// Name used in specs.
    pub name: Arc<str>,
    /// Version recorded in provenance and cache keys.
    pub version: Arc<str>,
    /// Execution kind.
    pub kind: OpKind,
    /// One-line description.
    pub summary: Arc<str>,
    /// JSON schema of the parameters (an object schema whose `properties` document them).
    schema: Arc<schemars::Schema>,
    build: BuildFn,
}

impl std::fmt::Debug for OpDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpDescriptor").field("name", &self.name).field("version", &self.version).finish()
    }
}

impl OpDescriptor {
    /// The descriptor of a built-in operator type.
    pub fn of<T: BuiltinOp>() -> Self {
        OpDescriptor::new(T::NAME, T::VERSION, T::KIND, T::SUMMARY, schemars::schema_for!(T::Params), Arc::new(build_typed::<T>))
    }

    /// The descriptor of an operator defined at run time: its parameters' JSON schema and a
    /// constructor (unknown parameter keys are refused before it is called).
    pub fn new(name: &str, version: &str, kind: OpKind, summary: &str, schema: schemars::Schema, build: BuildFn) -> Self {
        OpDescriptor { name: name.into(), version: version.into(), kind, summary: summary.into(), schema: Arc::new(schema), build }
    }

    /// Parameter documentation, in declaration order.
    pub fn params(&self) -> Vec<ParamDoc> {
        let schema = &self.schema;
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return Vec::new();
        };
        props
            .iter()
            .map(|(name, p)| ParamDoc {
                name: name.clone(),
                ty: schema_type(p),
                default: p.get("default").cloned(),
                doc: p.get("description").and_then(Value::as_str).unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// Builds a configured operator from JSON parameters (the step without its `op` key).
    pub fn build(&self, params: Value, ctx: &BuildContext) -> Result<Box<dyn Operator>, ParamError> {
        if let Value::Object(map) = &params {
            let known: Vec<String> = self.params().into_iter().map(|p| p.name).collect();
            if let Some(unknown) = map.keys().find(|k| !known.contains(k)) {
                return Err(ParamError::Unknown {
                    name: unknown.clone(),
                    hint: did_you_mean(unknown, known.iter().map(String::as_str))
                        .map(|s| format!(", did you mean `{s}`?"))
                        .unwrap_or_default(),
                    known: if known.is_empty() { "(none)".into() } else { known.join(", ") },
                });
            }
        }
        (self.build)(params, ctx)
    }
}

fn build_typed<T: BuiltinOp>(params: Value, ctx: &BuildContext) -> Result<Box<dyn Operator>, ParamError> {
    let params: T::Params = serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        ParamError::Invalid { path: if path == "." { String::new() } else { path }, message: e.into_inner().to_string() }
    })?;
    T::new_in(params, ctx).map(|op| Box::new(op) as Box<dyn Operator>).map_err(ParamError::Rejected)
}

fn schema_type(p: &Value) -> String {
    match p.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join("|"),
        _ if p.get("enum").is_some() || p.get("oneOf").is_some() => "enum".into(),
        _ => "any".into(),
    }
}

/// The closest candidate to `word`, when one is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The set of operators a pipeline may use.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    ops: Vec<OpDescriptor>,
}

impl Registry {
    /// A registry holding `ops`.
    pub fn new(ops: Vec<OpDescriptor>) -> Self {
        Registry { ops }
    }

    /// Adds an operator, replacing one of the same name (a user's operator may shadow a
    /// built-in; its name and version then identify its outputs in caches and lineage).
    pub fn register(&mut self, op: OpDescriptor) {
        match self.ops.iter_mut().find(|d| d.name == op.name) {
            Some(slot) => *slot = op,
            None => self.ops.push(op),
        }
    }

    /// Looks an operator up by name.
    pub fn get(&self, name: &str) -> Option<&OpDescriptor> {
        self.ops.iter().find(|d| &*d.name == name)
    }

    /// All operators, in registration order.
    pub fn all(&self) -> &[OpDescriptor] {
        &self.ops
    }

    /// The registered name closest to `name`, for "did you mean" hints.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        did_you_mean(name, self.ops.iter().map(|d| &*d.name))
    }
}
