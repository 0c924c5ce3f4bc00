//! The `curate` command-line interface.

mod progress;
mod registry_cmds;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use curate_core::exec::{execute, Plan, RunOptions};
use curate_core::io::Source;
use curate_core::spec::{ByteSize, InputFormat, Paths, PipelineSpec, SpecError, SpecErrors};
use curate_datasets::{Home, RunRecord};
use registry_cmds::{DatasetsCommand, RunsCommand};
use curate_core::stats::RunReport;
use curate_io::{DirSink, FileSource, IoError};

/// Turn raw data into versioned, explainable training datasets.
#[derive(Parser)]
#[command(name = "curate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a pipeline spec fully (operators, parameters, columns, input, output) without running it.
    Validate {
        /// The pipeline spec (YAML).
        spec: PathBuf,
    },
    /// Run a pipeline.
    Run {
        /// The pipeline spec (YAML).
        spec: PathBuf,
        /// Worker threads (default: available cores).
        #[arg(long, value_parser = parse_threads)]
        threads: Option<usize>,
        /// Keep the tasks an interrupted run of the same plan committed; run only the rest.
        #[arg(long)]
        resume: bool,
        /// Memory budget of global steps (dedup), e.g. `512MB`; they spill to disk to stay under it.
        #[arg(long, value_parser = parse_size)]
        memory_limit: Option<u64>,
        /// Seconds between progress lines when stderr is not a terminal.
        #[arg(long, default_value_t = 10.0)]
        progress_interval: f64,
        /// Compute every step, neither reusing nor storing step outputs.
        #[arg(long)]
        no_cache: bool,
        /// Neither record the run nor commit a dataset version (implies --no-cache).
        #[arg(long)]
        no_registry: bool,
    },
    /// Datasets and their versions.
    Datasets {
        #[command(subcommand)]
        command: DatasetsCommand,
    },
    /// Recorded runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Where a record came from, what touched it, where it was dropped, which versions hold it.
    Explain {
        /// Record id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove source records from every dataset derived from them (new versions, audited).
    Forget {
        /// Source record ids.
        #[arg(required = true)]
        sources: Vec<String>,
        /// Why (kept in the audit entry).
        #[arg(long)]
        reason: String,
        /// Also rewrite older versions' files without them and delete affected step outputs.
        #[arg(long)]
        purge: bool,
        /// Who asks (default: $USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Delete versions beyond the newest N per dataset (tagged ones stay) and unreferenced files.
    Gc {
        /// Versions kept per dataset.
        #[arg(long)]
        keep_last: u32,
        /// Unreferenced step outputs used, and store files written, within this many hours stay.
        #[arg(long, default_value_t = 24.0)]
        grace_hours: f64,
    },
    /// List operators with their parameters and defaults.
    Ops {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (omit --threads to use every core)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}")),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    ByteSize::parse(s).map(|b| b.0)
}

/// A configuration problem, already formatted for the user.
#[derive(Debug)]
struct ConfigError(String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConfigError {}

fn spec_errors(e: SpecErrors) -> anyhow::Error {
    ConfigError(e.to_string()).into()
}

fn located(spec: &PipelineSpec, path: &str, e: IoError) -> anyhow::Error {
    let err: SpecError = spec.error_at(path, format!("{path}: {e}"));
    ConfigError(err.to_string()).into()
}

/// Everything a run needs, validated.
struct Prepared {
    spec: PipelineSpec,
    source: FileSource,
    plan: Plan,
    /// The dataset version read as input, resolved.
    parent: Option<String>,
}

fn prepare(spec_path: &Path, home: &Home) -> anyhow::Result<Prepared> {
    let mut spec = PipelineSpec::load(spec_path).map_err(spec_errors)?;
    let mut parent = None;
    if let Some(reference) = spec.input.dataset.clone() {
        let at_dataset = |e: &dyn std::fmt::Display| ConfigError(spec.error_at("input.dataset", format!("input.dataset: {e}")).to_string());
        let version = home.registry_read_only().and_then(|reg| Ok(reg.version(&reference)?)).map_err(|e| at_dataset(&e))?;
        if version.files.is_empty() {
            return Err(at_dataset(&format!("{} holds no records", version.reference)).into());
        }
        // Every file is checked against the version's manifest before anything reads it.
        let files = home.verified_files(&version).map_err(|e| at_dataset(&e))?;
        spec.input.path = Paths::Many(files.iter().map(|f| f.to_string_lossy().into_owned()).collect());
        spec.input.format = Some(InputFormat::Parquet);
        spec.input.id_field = Some(curate_core::record::ID.into());
        parent = Some(version.reference.to_string());
    }
    let source = FileSource::open(&spec.input).map_err(|e| {
        let at = if matches!(e, IoError::Format { .. }) { "input" } else { "input.path" };
        located(&spec, at, e)
    })?;
    DirSink::check(&spec.output).map_err(|e| located(&spec, "output.path", e))?;
    let steps = spec.build_steps(&curate_ops::registry(), &source.column_names()).map_err(spec_errors)?;
    let mut input = serde_json::to_value(&spec.input)?;
    if let Some(m) = input.as_object_mut() {
        m.remove("path");
    }
    let mut output = serde_json::to_value(&spec.output)?;
    if let Some(m) = output.as_object_mut() {
        m.remove("path");
    }
    let settings = serde_json::json!({ "input": input, "output": output });
    let mut plan = Plan::new(&spec.name, source.schema(), steps, &settings);
    plan.duplicate_ids = spec.input.id_field.is_some().then_some(spec.input.on_duplicate_id);
    Ok(Prepared { spec, source, plan, parent })
}

fn print_summary(r: &RunReport, output: &str) {
    println!(
        "{}: {} records in, {} out, {} rejected, {} quarantined, {} tasks ({} resumed), {:.2}s",
        r.pipeline, r.records_in, r.records_out, r.rejected, r.quarantined, r.tasks, r.tasks_resumed, r.elapsed_s
    );
    let width = r.steps.iter().map(|s| s.op.len()).max().unwrap_or(4).max(4);
    println!("  {:<3} {:<width$} {:>12} {:>12}  dropped", "#", "step", "in", "out");
    for (i, s) in r.steps.iter().enumerate() {
        let dropped = s.dropped.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
        println!("  {:<3} {:<width$} {:>12} {:>12}  {}", i, s.op, s.records_in, s.records_out, dropped);
    }
    println!("output: {output}/data ({} files), rejects, quarantine, run.json", r.files.iter().filter(|f| f.path.starts_with("data/")).count());
    if r.duplicate_ids > 0 {
        println!(
            "warning: {} record(s) repeat an id an earlier record of the same input had (input.on_duplicate_id: keep | quarantine | fail)",
            r.duplicate_ids
        );
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Validate { spec } => {
            let p = prepare(&spec, &Home::from_env())?;
            println!(
                "{}: ok — {} input shard(s), {} step(s), output {}",
                spec.display(),
                p.source.shards().len(),
                p.plan.steps.len(),
                p.spec.output.path
            );
        }
        Command::Run { spec, threads, resume, memory_limit, progress_interval, no_cache, no_registry } => {
            let home = Home::from_env();
            let p = prepare(&spec, &home)?;
            let label = format!("a run of {} (spec {})", p.plan.name, spec.display());
            let sink = DirSink::create(&p.spec.output, &label).map_err(|e| located(&p.spec, "output.path", e))?;
            let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let progress = progress::RunProgress::new(Duration::from_secs_f64(progress_interval.max(0.1)));
            let registry = if no_registry { None } else { Some(home.registry().context("opening the registry")?) };
            let spec_text = std::fs::read_to_string(&spec).unwrap_or_default();
            let run_id = match &registry {
                Some(reg) => Some(curate_datasets::resume_or_start_run(reg, &p.plan, &spec_text, &p.spec.output.path, resume)?),
                None => None,
            };
            if let Some(run) = run_id {
                sink.describe_holder(&format!("run {run} of {} (spec {})", p.plan.name, spec.display()))?;
            }
            let opts = RunOptions {
                threads,
                resume,
                memory_limit: memory_limit.or(p.spec.memory_limit.map(|b| b.0)),
                cache: (!no_cache && !no_registry).then(|| home.step_cache()),
            };
            let report = match execute(&p.plan, &p.source, &sink, &opts, &progress) {
                Ok(r) => r,
                Err(e) => {
                    if let (Some(reg), Some(run)) = (&registry, run_id) {
                        let _ = reg.finish_run(run, curate_registry::RunStatus::Failed);
                    }
                    return Err(anyhow::Error::new(e).context(format!("run of {} failed", spec.display())));
                }
            };
            print_summary(&report, &p.spec.output.path);
            if let (Some(reg), Some(run)) = (&registry, run_id) {
                let sources = match p.parent {
                    Some(_) => Vec::new(),
                    None => curate_datasets::source_files(&p.source).context("hashing the input files")?,
                };
                let record = RunRecord {
                    run,
                    dataset: p.spec.dataset_name(),
                    plan: &p.plan,
                    report: &report,
                    output_dir: Path::new(&p.spec.output.path),
                    versioned: p.spec.output.format == curate_core::spec::OutputFormat::Parquet
                        && !p.spec.output.path.contains("://"),
                    parents: p.parent.iter().cloned().collect(),
                    sources,
                };
                match curate_datasets::record_run(&home, reg, &record).context("recording the run in the registry")? {
                    Some(c) => {
                        let (reused, computed) = report.cache_counts();
                        println!(
                            "run {run}: {} {} ({reused} task steps reused, {computed} computed)",
                            if c.new { "committed" } else { "output unchanged, still" },
                            c.version,
                        )
                    }
                    None => println!("run {run} recorded (no version: versions are committed for local Parquet outputs)"),
                }
            }
        }
        Command::Datasets { command } => registry_cmds::datasets(&Home::from_env(), command)?,
        Command::Runs { command } => registry_cmds::runs(&Home::from_env(), command)?,
        Command::Explain { id, json } => registry_cmds::explain(&Home::from_env(), &id, json)?,
        Command::Forget { sources, reason, purge, actor } => {
            let home = Home::from_env();
            let reg = home.registry()?;
            let actor = actor.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into());
            let r = curate_datasets::forget(&home, &reg, &sources, &reason, &actor, purge)?;
            if !r.unknown.is_empty() {
                eprintln!("warning: unknown id(s), not part of forget #{}: {}", r.audit, r.unknown.join(", "));
            }
            let known = sources.iter().filter(|s| !r.unknown.contains(s)).collect::<std::collections::BTreeSet<_>>().len();
            println!("forget #{}: {known} source(s)", r.audit);
            if r.versions.is_empty() && r.purged.is_empty() && r.outputs.is_empty() {
                println!("  no dataset version holds anything derived from them");
            }
            for (v, n) in &r.versions {
                println!("  committed {v} without {n} record(s)");
            }
            for (v, n) in &r.purged {
                println!("  purged {n} record(s) from {v}");
            }
            for (f, n) in &r.outputs {
                println!("  purged {n} record(s) from {}", f.display());
            }
            if purge {
                println!("  deleted {} file(s) and step output(s)", r.deleted_files);
            }
        }
        Command::Gc { keep_last, grace_hours } => {
            let home = Home::from_env();
            let reg = home.registry()?;
            let r = curate_datasets::gc(&home, &reg, keep_last, (grace_hours * 3_600_000.0) as i64)?;
            for run in &r.abandoned {
                println!("run {run}: its process is gone; marked abandoned (`curate run --resume` continues it)");
            }
            println!(
                "removed {} version(s){}, {} data file(s), {} step output(s)",
                r.versions.len(),
                if r.versions.is_empty() { String::new() } else { format!(" ({})", r.versions.join(", ")) },
                r.objects,
                r.cache_entries
            );
            if !r.running.is_empty() {
                let ids: Vec<String> = r.running.iter().map(ToString::to_string).collect();
                println!("  files and step outputs kept: run(s) {} still running; run gc again when they finish", ids.join(", "));
            }
        }
        Command::Ops { json } => {
            let registry = curate_ops::registry();
            if json {
                let ops: Vec<_> = registry
                    .all()
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "name": d.name, "version": d.version, "kind": d.kind,
                            "summary": d.summary, "params": d.params(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&ops)?);
            } else {
                for d in registry.all() {
                    println!("{} (v{}, {:?}): {}", d.name, d.version, d.kind, d.summary);
                    for p in d.params() {
                        let default = p.default.filter(|v| !v.is_null()).map(|v| format!(" = {v}")).unwrap_or_default();
                        println!("    {}: {}{default}\n        {}", p.name, p.ty, p.doc.replace('\n', " "));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The error and its causes, each said once: many library errors already include their
/// source's text, which `{:#}` would print again.
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CURATE_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<ConfigError>().is_some() {
                eprintln!("error: {e}");
            } else {
                eprintln!("error: {}", describe(&e));
            }
            ExitCode::FAILURE
        }
    }
}
