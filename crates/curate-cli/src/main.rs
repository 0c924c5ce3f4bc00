//! The `curate` command-line interface.

mod cache_cmds;
mod progress;
mod registry_cmds;
mod service_cmds;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use curate_core::spec::ByteSize;
use curate_core::stats::RunReport;
use curate_datasets::Home;
use curate_engine::{Engine, EngineError, Pipeline, Prepared, RunSettings};
use cache_cmds::CacheCommand;
use registry_cmds::{DatasetsCommand, RegistryCommand, RunsCommand};

/// Turn raw data into versioned, explainable training datasets.
#[derive(Parser)]
#[command(name = "curate", version, about)]
struct Cli {
    /// Talk to this `curate serve` (with $CURATE_TOKEN) instead of the local registry: for run, runs, datasets and explain.
    #[arg(long, global = true, env = "CURATE_SERVER")]
    server: Option<String>,
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
        /// With --server: repeating a submission with this key returns the run it created.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Where tasks run: `local` threads, or `ray` (each task a Ray task on $RAY_ADDRESS or a
        /// local Ray; needs the Python package, run by $CURATE_PYTHON or python3).
        #[arg(long, value_enum, default_value_t = Executor::Local)]
        executor: Executor,
        /// With --executor ray: Ray tasks at once (default: the cluster's CPUs).
        #[arg(long)]
        workers: Option<usize>,
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
    /// The registry itself: `upgrade` converts one written by curate 0.1.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
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
    /// The step cache: its size against the budget, and evicting least recently used outputs.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Serve the REST control plane (API under /v1, OpenAPI at /openapi.json, web UI at /) with local workers.
    Serve(service_cmds::ServeArgs),
    /// Run tasks for a `curate serve` (needs --server and a token with scope run in $CURATE_TOKEN).
    Worker {
        /// Tasks run at once.
        #[arg(long, default_value_t = 1)]
        slots: usize,
        /// Name shown in the server's worker list.
        #[arg(long)]
        name: Option<String>,
        /// Threads each task uses.
        #[arg(long, default_value_t = 1)]
        task_threads: usize,
    },
    /// API tokens of `curate serve`: create (shown once), revoke, list.
    Tokens {
        #[command(subcommand)]
        command: service_cmds::TokensCommand,
    },
    /// List operators with their parameters and defaults.
    Ops {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Where a run's tasks execute.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Executor {
    /// Threads of this process.
    Local,
    /// Ray tasks, through the Python package.
    Ray,
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

/// The engine's error for the CLI: configuration problems print as they are.
fn engine_error(e: EngineError) -> anyhow::Error {
    match e {
        EngineError::Config(message) => ConfigError(message).into(),
        other => other.into(),
    }
}

fn prepare(engine: &Engine, spec: &Path) -> anyhow::Result<Prepared> {
    engine.prepare(Pipeline::load(spec).map_err(engine_error)?).map_err(engine_error)
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
            let p = prepare(&Engine::from_env(), &spec)?;
            println!(
                "{}: ok — {} input shard(s), {} step(s), output {}",
                spec.display(),
                p.shards(),
                p.plan().steps.len(),
                p.spec().output.path
            );
        }
        Command::Run { spec, idempotency_key, .. } if cli.server.is_some() => {
            service_cmds::run(cli.server.as_deref().unwrap_or_default(), &spec, idempotency_key.as_deref())?
        }
        Command::Run { spec, executor: Executor::Ray, workers, resume, .. } => run_on_ray(&spec, workers, resume)?,
        Command::Run { spec, threads, resume, memory_limit, progress_interval, no_cache, no_registry, .. } => {
            let engine = Engine::from_env();
            let p = prepare(&engine, &spec)?;
            let progress = progress::RunProgress::new(Duration::from_secs_f64(progress_interval.max(0.1)));
            let settings = RunSettings { threads, resume, memory_limit, no_cache, no_registry, ..Default::default() };
            let outcome = match engine.run(&p, &settings, &progress) {
                Ok(o) => o,
                Err(EngineError::Record { report, source }) => {
                    print_summary(&report, &p.spec().output.path);
                    return Err(anyhow::Error::new(source).context("recording the run in the registry"));
                }
                Err(e) => return Err(engine_error(e)),
            };
            print_summary(&outcome.report, &p.spec().output.path);
            match (outcome.run, outcome.committed) {
                (Some(run), Some(c)) => {
                    let (reused, computed) = outcome.report.cache_counts();
                    println!(
                        "run {run}: {} {} ({reused} task steps reused, {computed} computed)",
                        if c.new { "committed" } else { "output unchanged, still" },
                        c.version,
                    )
                }
                (Some(run), None) => println!("run {run} recorded"),
                (None, _) => {}
            }
        }
        Command::Datasets { command } => match &cli.server {
            Some(server) => service_cmds::datasets(server, command)?,
            None => registry_cmds::datasets(&Home::from_env(), command)?,
        },
        Command::Runs { command } => match &cli.server {
            Some(server) => service_cmds::runs(server, command)?,
            None => registry_cmds::runs(&Home::from_env(), command)?,
        },
        Command::Serve(args) => service_cmds::serve(args)?,
        Command::Worker { slots, name, task_threads } => {
            let Some(server) = &cli.server else { anyhow::bail!("curate worker needs --server URL (or $CURATE_SERVER): the control plane to take tasks from") };
            service_cmds::worker(server, slots, name, task_threads)?
        }
        Command::Tokens { command } => service_cmds::tokens(&Home::from_env(), command)?,
        Command::Registry { command } => registry_cmds::registry(&Home::from_env(), command)?,
        Command::Cache { command } => cache_cmds::cache(&Home::from_env(), command)?,
        Command::Explain { id, .. } if cli.server.is_some() => service_cmds::explain(cli.server.as_deref().unwrap_or_default(), &id)?,
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
            let engine = Engine::from_env();
            let registry = engine.ops();
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

/// `curate run --executor ray`: the Python package drives Ray (the run's logic stays in the
/// engine, which each Ray task runs); its output and exit status are the command's.
fn run_on_ray(spec: &Path, workers: Option<usize>, resume: bool) -> anyhow::Result<()> {
    let python = std::env::var("CURATE_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd = std::process::Command::new(&python);
    cmd.args(["-m", "curate", "run", "--executor", "ray"]).arg(spec);
    if let Some(w) = workers {
        cmd.args(["--workers", &w.to_string()]);
    }
    if resume {
        cmd.arg("--resume");
    }
    let found = std::process::Command::new(&python).args(["-c", "import curate, ray"]).output();
    if !found.is_ok_and(|o| o.status.success()) {
        anyhow::bail!("--executor ray needs Python ({python}, or $CURATE_PYTHON) with the curate package and ray: pip install './python[ray]'");
    }
    let status = cmd.status().map_err(|e| anyhow::anyhow!("starting {python}: {e}"))?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
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
    // Rust ignores SIGPIPE, turning a closed pipe into a panic at the next print; a
    // command-line tool should end quietly like any other (`curate ops | head`).
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
