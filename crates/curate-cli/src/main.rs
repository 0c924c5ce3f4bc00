//! The `curate` command-line interface.

mod progress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use curate_core::exec::{execute, Plan, RunOptions};
use curate_core::io::Source;
use curate_core::spec::{ByteSize, PipelineSpec, SpecError, SpecErrors};
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
        #[arg(long)]
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
    },
    /// List operators with their parameters and defaults.
    Ops {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
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
}

fn prepare(spec_path: &Path) -> anyhow::Result<Prepared> {
    let spec = PipelineSpec::load(spec_path).map_err(spec_errors)?;
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
    let plan = Plan::new(&spec.name, source.schema(), steps, &settings);
    Ok(Prepared { spec, source, plan })
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
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Validate { spec } => {
            let p = prepare(&spec)?;
            println!(
                "{}: ok — {} input shard(s), {} step(s), output {}",
                spec.display(),
                p.source.shards().len(),
                p.plan.steps.len(),
                p.spec.output.path
            );
        }
        Command::Run { spec, threads, resume, memory_limit, progress_interval } => {
            let p = prepare(&spec)?;
            let sink = DirSink::create(&p.spec.output).map_err(|e| located(&p.spec, "output.path", e))?;
            let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let progress = progress::RunProgress::new(Duration::from_secs_f64(progress_interval.max(0.1)));
            let report = execute(&p.plan, &p.source, &sink, &RunOptions { threads, resume, memory_limit: memory_limit.or(p.spec.memory_limit.map(|b| b.0)) }, &progress)
                .with_context(|| format!("run of {} failed", spec.display()))?;
            print_summary(&report, &p.spec.output.path);
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
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
