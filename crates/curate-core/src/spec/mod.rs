//! Pipeline specs: the YAML file a user writes, parsed, checked and tied to operators.

pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::operator::{BuildContext, OpDescriptor, Operator, ParamError, Registry};
use yaml::{MarkedDoc, Pos};

/// A spec problem, located in the spec file where possible.
#[derive(Debug, Clone, thiserror::Error)]
pub struct SpecError {
    /// The spec file.
    pub file: PathBuf,
    /// Where in the file, when known.
    pub pos: Option<Pos>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file.display(), p.line, p.col, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// One or more spec errors; validation reports all it finds, not only the first.
#[derive(Debug, Clone, thiserror::Error)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A byte count written as `256MB`, `1.5GiB`, `4096` or `64 KB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[schemars(with = "String")]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses a size with an optional decimal (KB, MB, GB) or binary (KiB, MiB, GiB) unit.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = (&t[..split], t[split..].trim());
        let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a size such as `256MB`"))?;
        let mult: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "mb" | "m" => 1_000_000,
            "gb" | "g" => 1_000_000_000,
            "tb" | "t" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            other => return Err(format!("unknown size unit `{other}` in `{s}`; use B, KB, MB, GB, KiB, MiB or GiB")),
        };
        let bytes = n * mult as f64;
        if !(bytes >= 1.0 && bytes.is_finite()) {
            return Err(format!("size `{s}` must be at least 1 byte"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .filter(|&n| n > 0)
                .map(ByteSize)
                .ok_or_else(|| serde::de::Error::custom(format!("size {n} must be a positive whole number of bytes"))),
            Value::String(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!("expected a size such as `256MB`, found {other}"))),
        }
    }
}

/// A duration written as `5s`, `500ms`, `2m`, `1h` or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[schemars(with = "String")]
pub struct Interval(pub std::time::Duration);

impl Interval {
    /// Parses a number with an optional unit (ms, s, m, h; seconds without one).
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = (&t[..split], t[split..].trim());
        let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration such as `5s`"))?;
        let secs = match unit {
            "ms" => n / 1000.0,
            "" | "s" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            other => return Err(format!("unknown duration unit `{other}` in `{s}`; use ms, s, m or h")),
        };
        if !(secs >= 0.1 && secs.is_finite()) {
            return Err(format!("duration `{s}` must be at least 100ms"));
        }
        Ok(Interval(std::time::Duration::from_secs_f64(secs)))
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => Interval::parse(&n.to_string()).map_err(serde::de::Error::custom),
            Value::String(s) => Interval::parse(&s).map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!("expected a duration such as `5s`, found {other}"))),
        }
    }
}

/// What starts runs of a pipeline besides a user (`trigger:` in a spec).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// Watch the input while `curate serve` runs: new or changed files start an incremental
    /// run over them, committing the next version; removed files leave it.
    pub watch: Option<WatchSpec>,
}

/// A watched input (`trigger: {watch: {interval: 5s}}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    /// How often the input is listed.
    pub interval: Interval,
}

/// One path or a list of paths/globs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Paths {
    /// A single path or glob.
    One(String),
    /// Several paths or globs, read in the order given.
    Many(Vec<String>),
}

impl Paths {
    /// The paths as a slice-like list.
    pub fn as_vec(&self) -> Vec<String> {
        match self {
            Paths::One(p) => vec![p.clone()],
            Paths::Many(ps) => ps.clone(),
        }
    }
}

/// Input record format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// One JSON object per line, optionally gzip or zstd compressed.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

/// Where and how records are read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Local paths, globs, or `s3://bucket/prefix/*.jsonl` URLs; empty when `dataset` is set.
    #[serde(default = "no_paths")]
    pub path: Paths,
    /// A registered dataset version to read instead of files (`web-global@latest`,
    /// `web-global@3`, `web-global@release-2026-12`).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Format; inferred from the extension when omitted.
    #[serde(default)]
    pub format: Option<InputFormat>,
    /// Field holding a stable record id; ids derive from (file, offset) when omitted.
    #[serde(default)]
    pub id_field: Option<String>,
    /// Field holding the text payload.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Uncompressed JSONL files larger than this are split into byte ranges, one task each.
    #[serde(default = "default_split_size")]
    pub split_size: ByteSize,
    /// Records sampled (from the start of the inputs) to infer metadata column types.
    #[serde(default = "default_sample_records")]
    pub sample_records: usize,
    /// What to do with a record whose `id_field` value an earlier record of the same input
    /// shard had: `keep` (counted, with a warning), `quarantine` or `fail`.
    #[serde(default)]
    pub on_duplicate_id: OnDuplicateId,
}

/// Policy for input ids that occur more than once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDuplicateId {
    /// Keep every record; count the duplicates and warn.
    #[default]
    Keep,
    /// Move the later records to quarantine with their content.
    Quarantine,
    /// Fail the task.
    Fail,
}

fn no_paths() -> Paths {
    Paths::Many(Vec::new())
}
fn default_text_field() -> String {
    "text".into()
}
fn default_split_size() -> ByteSize {
    ByteSize(64 * 1000 * 1000)
}
fn default_sample_records() -> usize {
    1000
}

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Apache Parquet (zstd-compressed pages by default).
    Parquet,
    /// One JSON object per line.
    Jsonl,
}

/// Compression of output files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip (JSONL only).
    Gzip,
    /// Zstandard.
    Zstd,
    /// Snappy (Parquet only).
    Snappy,
}

/// Where and how results are written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output directory (local path or `s3://` URL).
    pub path: String,
    /// Format of data and rejects files.
    #[serde(default = "default_output_format")]
    pub format: OutputFormat,
    /// Compression; zstd for Parquet and none for JSONL when omitted.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Target size of one output file, before compression.
    #[serde(default = "default_shard_size")]
    pub shard_size: ByteSize,
    /// Dataset whose next version the run commits; the pipeline name when omitted.
    #[serde(default)]
    pub dataset: Option<String>,
}

fn default_output_format() -> OutputFormat {
    OutputFormat::Parquet
}
fn default_shard_size() -> ByteSize {
    ByteSize(256 * 1000 * 1000)
}

impl OutputSpec {
    /// The effective compression.
    pub fn compression(&self) -> Compression {
        self.compression.unwrap_or(match self.format {
            OutputFormat::Parquet => Compression::Zstd,
            OutputFormat::Jsonl => Compression::None,
        })
    }
}

/// Settings of the step cache (`cache:` in a spec).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// Size budget of the step cache; after a run stores step outputs, the least recently
    /// used are evicted to stay under it. `CURATE_CACHE_MAX` overrides it.
    #[serde(default)]
    pub max_size: Option<ByteSize>,
}

/// A step as written: an operator name and its parameters.
#[derive(Debug, Clone, Serialize)]
pub struct StepSpec {
    /// Operator name.
    pub op: String,
    /// Parameters (the step mapping without `op`).
    pub params: Value,
}

/// A parsed pipeline spec, still tied to its source text for error positions.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// Pipeline name.
    pub name: String,
    /// Input.
    pub input: InputSpec,
    /// Ordered steps.
    pub steps: Vec<StepSpec>,
    /// Output.
    pub output: OutputSpec,
    /// Memory budget of global steps (`--memory-limit` overrides it).
    pub memory_limit: Option<ByteSize>,
    /// Step cache settings.
    pub cache: CacheSpec,
    /// What starts runs besides a user (a watched input).
    pub trigger: TriggerSpec,
    /// The spec file.
    pub file: PathBuf,
    /// The spec as JSON, with positions.
    doc: MarkedDoc,
}

/// A step whose operator is known and whose parameters are valid.
pub struct BuiltStep {
    /// Index in `steps`.
    pub index: usize,
    /// The registry entry.
    pub descriptor: OpDescriptor,
    /// Canonical parameters (sorted keys), as recorded in provenance and cache keys.
    pub params: Value,
    /// The configured operator.
    pub operator: Box<dyn Operator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    input: InputSpec,
    #[serde(default)]
    steps: Vec<Value>,
    output: OutputSpec,
    #[serde(default)]
    memory_limit: Option<ByteSize>,
    #[serde(default)]
    cache: CacheSpec,
    #[serde(default)]
    trigger: TriggerSpec,
}

impl PipelineSpec {
    /// Reads and parses a spec file.
    pub fn load(file: &Path) -> Result<Self, SpecErrors> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            SpecErrors(vec![SpecError { file: file.into(), pos: None, message: format!("cannot read spec: {e}") }])
        })?;
        Self::parse(&text, file)
    }

    /// Parses spec text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Self, SpecErrors> {
        let err = |pos, message| SpecErrors(vec![SpecError { file: file.into(), pos, message }]);
        let doc = yaml::load(text).map_err(|e| {
            err(Some(Pos { line: e.pos_line, col: e.pos_col }), format!("invalid YAML: {}", e.message))
        })?;
        let raw: RawSpec = serde_path_to_error::deserialize(doc.value.clone()).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let at = if path == "." { "spec".to_string() } else { format!("`{path}`") };
            err(doc.pos(&path), format!("{at}: {}", humanize_serde(&inner)))
        })?;
        let mut errors = Vec::new();
        let mut steps = Vec::new();
        for (i, step) in raw.steps.into_iter().enumerate() {
            let at = doc.pos(&format!("steps[{i}]"));
            match step {
                Value::Object(mut map) => match map.remove("op") {
                    Some(Value::String(op)) => steps.push(StepSpec { op, params: Value::Object(map) }),
                    _ => errors.push(SpecError {
                        file: file.into(),
                        pos: at,
                        message: format!("steps[{i}]: every step needs `op: <operator name>` (see `curate ops`)"),
                    }),
                },
                _ => errors.push(SpecError {
                    file: file.into(),
                    pos: at,
                    message: format!("steps[{i}]: a step is a mapping such as `- op: length_filter`"),
                }),
            }
        }
        match (raw.input.path.as_vec().is_empty(), &raw.input.dataset) {
            (true, None) => errors.push(SpecError {
                file: file.into(),
                pos: doc.pos("input"),
                message: "`input` needs `path` (files) or `dataset` (a registered dataset version such as `web@latest`)".into(),
            }),
            (false, Some(_)) => errors.push(SpecError {
                file: file.into(),
                pos: doc.pos("input.dataset"),
                message: "`input` takes either `path` or `dataset`, not both".into(),
            }),
            _ => {}
        }
        if raw.name.trim().is_empty() {
            errors.push(SpecError { file: file.into(), pos: doc.pos("name"), message: "`name` must not be empty".into() });
        }
        if !errors.is_empty() {
            return Err(SpecErrors(errors));
        }
        Ok(PipelineSpec {
            name: raw.name,
            input: raw.input,
            steps,
            output: raw.output,
            memory_limit: raw.memory_limit,
            cache: raw.cache,
            trigger: raw.trigger,
            file: file.into(),
            doc,
        })
    }

    /// An error located at a spec path such as `input.path` or `steps[2].min_chars`.
    pub fn error_at(&self, path: &str, message: impl Into<String>) -> SpecError {
        SpecError { file: self.file.clone(), pos: self.doc.pos(path), message: message.into() }
    }

    /// The dataset the run commits to.
    pub fn dataset_name(&self) -> &str {
        self.output.dataset.as_deref().unwrap_or(&self.name)
    }

    /// The spec as JSON (for run records and cache keys).
    pub fn as_json(&self) -> &Value {
        &self.doc.value
    }

    /// Resolves every step against `registry` and checks the columns each step reads exist.
    /// `input_columns` are the columns the input provides.
    pub fn build_steps(&self, registry: &Registry, input_columns: &[String]) -> Result<Vec<BuiltStep>, SpecErrors> {
        // Relative paths in parameters start where the spec is (the working directory for
        // specs built from text).
        let base_dir = self.file.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut errors = Vec::new();
        let mut built = Vec::new();
        let mut available: Vec<String> = input_columns.to_vec();
        for (index, step) in self.steps.iter().enumerate() {
            let at = format!("steps[{index}]");
            let Some(descriptor) = registry.get(&step.op) else {
                let hint = registry.suggest(&step.op).map(|s| format!(" Did you mean `{s}`?")).unwrap_or_default();
                errors.push(self.error_at(
                    &format!("{at}.op"),
                    format!("{at}: unknown operator `{}`.{hint} Run `curate ops` to list operators.", step.op),
                ));
                continue;
            };
            let ctx = BuildContext { base_dir: base_dir.clone(), pipeline: self.name.clone(), step: index };
            match descriptor.build(step.params.clone(), &ctx) {
                Ok(operator) => {
                    let cols = operator.columns();
                    for col in &cols.reads {
                        if !available.contains(col) {
                            errors.push(self.error_at(
                                &at,
                                format!(
                                    "{at} ({}): reads column `{col}`, which neither the input nor an earlier step provides; available: {}",
                                    step.op,
                                    available.join(", ")
                                ),
                            ));
                        }
                    }
                    available.extend(cols.writes.into_iter().map(|(name, _)| name));
                    built.push(BuiltStep {
                        index,
                        descriptor: descriptor.clone(),
                        params: canonical(&step.params),
                        operator,
                    });
                }
                Err(e) => {
                    let path = match e.path() {
                        Some(p) if !p.is_empty() => format!("{at}.{p}"),
                        _ => at.clone(),
                    };
                    let msg = match &e {
                        ParamError::Invalid { path, message } if path.is_empty() => humanize_serde(message),
                        ParamError::Invalid { path, message } => format!("parameter `{path}`: {}", humanize_serde(message)),
                        other => other.to_string(),
                    };
                    errors.push(self.error_at(&path, format!("{at} ({}): {msg}", step.op)));
                }
            }
        }
        if errors.is_empty() {
            Ok(built)
        } else {
            Err(SpecErrors(errors))
        }
    }
}

/// Rewrites serde's wording where it would puzzle a spec author.
fn humanize_serde(msg: &str) -> String {
    msg.replace("unknown field", "unknown key").replace("missing field", "missing required key")
}

/// JSON with object keys sorted, recursively, so equal parameters hash equally.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(ByteSize::parse("256MB").unwrap(), ByteSize(256_000_000));
        assert_eq!(ByteSize::parse("1.5 GiB").unwrap(), ByteSize(1_610_612_736));
        assert_eq!(ByteSize::parse("4096").unwrap(), ByteSize(4096));
        assert!(ByteSize::parse("12 parsecs").unwrap_err().contains("unknown size unit"));
        assert!(ByteSize::parse("0").is_err());
    }

    #[test]
    fn spec_errors_name_line() {
        let text = "name: t\ninput:\n  path: x.jsonl\n  formt: jsonl\noutput:\n  path: out\n";
        let err = PipelineSpec::parse(text, Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.starts_with("p.yaml:4:3: `input.formt`"), "{err}");
        assert!(err.contains("unknown key `formt`"), "{err}");
    }

    #[test]
    fn cache_budget_is_a_size() {
        let base = "name: t\ninput: {path: a}\noutput: {path: out}\n";
        let spec = PipelineSpec::parse(&format!("{base}cache: {{max_size: 2GB}}\n"), Path::new("p.yaml")).unwrap();
        assert_eq!(spec.cache.max_size, Some(ByteSize(2_000_000_000)));
        assert_eq!(PipelineSpec::parse(base, Path::new("p.yaml")).unwrap().cache.max_size, None);
        let err = PipelineSpec::parse(&format!("{base}cache:\n  max_size: lots\n"), Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.starts_with("p.yaml:5:3: `cache.max_size`"), "{err}");
        let err = PipelineSpec::parse(&format!("{base}cache:\n  max_sise: 1GB\n"), Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("unknown key `max_sise`"), "{err}");
    }

    #[test]
    fn missing_output_named() {
        let err = PipelineSpec::parse("name: t\ninput: {path: a}\n", Path::new("p.yaml")).unwrap_err().to_string();
        assert!(err.contains("missing required key `output`"), "{err}");
    }
}
