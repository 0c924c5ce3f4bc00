//! `curate serve`, `curate worker`, `curate tokens`, and the commands that talk to a
//! server (`--server URL`, with `$CURATE_TOKEN`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, Subcommand};
use curate_datasets::Home;
use curate_engine::Engine;
use curate_registry::{RetryPolicy, Scope};
use curate_server::client::Client;
use serde_json::{json, Value};

use crate::registry_cmds::{DatasetsCommand, RunsCommand};

/// `curate serve` settings.
#[derive(Args)]
pub struct ServeArgs {
    /// Address and port the API listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Worker threads inside the server (0: only `curate worker` processes run tasks).
    #[arg(long)]
    workers: Option<usize>,
    /// Map and reduce tasks held at once across every run (default: as many as workers take).
    #[arg(long)]
    max_slots: Option<i64>,
    /// Seconds a task's lease lasts without a heartbeat; a dead worker's task is taken again after it.
    #[arg(long, default_value_t = 30.0)]
    lease_secs: f64,
    /// Attempts of a failing task before it is dead-lettered and its run fails.
    #[arg(long, default_value_t = 3)]
    max_attempts: i64,
    /// Seconds before the first retry of a failed task (doubling after).
    #[arg(long, default_value_t = 1.0)]
    backoff_secs: f64,
    /// Hours a run may stay queued before it fails.
    #[arg(long, default_value_t = 24.0)]
    queue_timeout_hours: f64,
    /// Threads each task uses.
    #[arg(long, default_value_t = 1)]
    task_threads: usize,
}

/// `curate serve`.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = curate_server::ServerConfig { listen: args.listen, ..Default::default() };
    if let Some(w) = args.workers {
        config.local_workers = w;
    }
    config.max_slots = args.max_slots;
    config.lease = Duration::from_secs_f64(args.lease_secs.max(0.5));
    config.retry = RetryPolicy { max_attempts: args.max_attempts.max(1), backoff_ms: (args.backoff_secs * 1000.0) as i64 };
    config.queue_timeout = (args.queue_timeout_hours > 0.0).then(|| Duration::from_secs_f64(args.queue_timeout_hours * 3600.0));
    config.task_threads = args.task_threads.max(1);
    curate_server::serve(Engine::from_env(), config)?;
    Ok(())
}

/// `curate worker --server URL`.
pub fn worker(server: &str, slots: usize, name: Option<String>, task_threads: usize) -> anyhow::Result<()> {
    let client = Client::from_env(server).map_err(anyhow::Error::msg)?;
    let name = name.unwrap_or_else(|| format!("worker-{}", std::process::id()));
    curate_server::worker::run_remote(&Engine::from_env(), client, &name, slots.max(1), task_threads.max(1), &AtomicBool::new(false))?;
    Ok(())
}

/// `curate tokens ...`
#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token; prints it once, as the last word of the output.
    Create {
        /// What it may do: read, run (read + start, cancel, retry runs, register pipelines) or admin (everything).
        #[arg(long)]
        scope: String,
        /// Its name, recorded in the audit log of every call it makes.
        #[arg(long)]
        name: String,
    },
    /// Revoke the active token with this name.
    Revoke {
        /// The token's name.
        name: String,
    },
    /// List tokens (names and scopes; secrets are not stored).
    List,
}

/// Runs a `tokens` subcommand against the registry.
pub fn tokens(home: &Home, cmd: TokensCommand) -> anyhow::Result<()> {
    let reg = home.registry()?;
    match cmd {
        TokensCommand::Create { scope, name } => {
            let scope = Scope::parse(&scope).ok_or_else(|| anyhow::anyhow!("--scope must be read, run or admin, not {scope:?}"))?;
            let (info, secret) = curate_server::create_token(&reg, &name, scope)?;
            println!("token {} (scope {}): {secret}", info.name, info.scope.as_str());
        }
        TokensCommand::Revoke { name } => {
            if !reg.revoke_token(&name)? {
                anyhow::bail!("no active token named {name:?}; `curate tokens list` shows them");
            }
            println!("revoked {name}");
        }
        TokensCommand::List => {
            for t in reg.tokens()? {
                let state = t.revoked_at_ms.map_or_else(|| "active".to_string(), |ms| format!("revoked {}", curate_datasets::views::time(ms)));
                println!("{}  {}  created {}  {state}", t.name, t.scope.as_str(), curate_datasets::views::time(t.created_at_ms));
            }
        }
    }
    Ok(())
}

/// `s` as one URL path segment or query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn client(server: &str) -> anyhow::Result<Client> {
    Client::from_env(server).map_err(anyhow::Error::msg)
}

fn print(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `curate run SPEC --server URL`: submits the spec, follows the run until it ends.
pub fn run(server: &str, spec: &Path, idempotency_key: Option<&str>) -> anyhow::Result<()> {
    let c = client(server)?;
    let text = std::fs::read_to_string(spec).map_err(|e| anyhow::anyhow!("{}: cannot read spec: {e}", spec.display()))?;
    let headers: Vec<(&str, &str)> = idempotency_key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    let (_, run) = c.post("/v1/runs", &json!({ "spec": text }), &headers).map_err(anyhow::Error::msg)?;
    let id = run.get("id").and_then(Value::as_i64).ok_or_else(|| anyhow::anyhow!("the server answered without a run id: {run}"))?;
    println!("run {id} queued on {server}");
    let mut last_state = String::new();
    loop {
        let run = c.get(&format!("/v1/runs/{id}")).map_err(anyhow::Error::msg)?;
        let state = run.get("state").and_then(Value::as_str).unwrap_or("unknown").to_string();
        if state != last_state {
            let waits = run.get("waiting_for").and_then(Value::as_str).map(|w| format!(" (waiting: {w})")).unwrap_or_default();
            println!("run {id}: {state}{waits}");
            last_state = state.clone();
        }
        match state.as_str() {
            "succeeded" => {
                let n = |k: &str| run.get(k).and_then(Value::as_u64).unwrap_or(0);
                let version = run.get("version").and_then(Value::as_str).unwrap_or("no version (unversioned output)");
                println!("run {id}: {} records in, {} out, {} rejected; {version}", n("records_in"), n("records_out"), n("records_rejected"));
                return Ok(());
            }
            "failed" | "cancelled" => {
                let error = run.get("error").and_then(Value::as_str).unwrap_or("");
                anyhow::bail!("run {id} {state}: {error}");
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// `curate runs ... --server URL`.
pub fn runs(server: &str, cmd: RunsCommand) -> anyhow::Result<()> {
    let c = client(server)?;
    match cmd {
        RunsCommand::List { limit, json } => {
            let page = c.get(&format!("/v1/runs?limit={}", limit.clamp(1, 500))).map_err(anyhow::Error::msg)?;
            if json {
                return print(&page);
            }
            for r in page.get("runs").and_then(Value::as_array).into_iter().flatten() {
                let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
                println!("run {}  {}  {}  {}  {}", r.get("id").unwrap_or(&Value::Null), s("pipeline"), s("state"), s("created_at"), s("version"));
            }
        }
        RunsCommand::Show { run, .. } => print(&c.get(&format!("/v1/runs/{run}")).map_err(anyhow::Error::msg)?)?,
    }
    Ok(())
}

/// `curate datasets list|show|diff --server URL`.
pub fn datasets(server: &str, cmd: DatasetsCommand) -> anyhow::Result<()> {
    let c = client(server)?;
    let v = match cmd {
        DatasetsCommand::List { .. } => c.get("/v1/datasets"),
        DatasetsCommand::Show { dataset, .. } => c.get(&format!("/v1/datasets/{}", enc(&dataset))),
        DatasetsCommand::Diff { old, new, limit, .. } => c.get(&format!("/v1/diff?from={}&to={}&limit={}", enc(&old), enc(&new), limit.max(1))),
        _ => return Err(anyhow::anyhow!("with --server, datasets offers list, show and diff; run the others where the registry is")),
    };
    print(&v.map_err(anyhow::Error::msg)?)
}

/// `curate explain ID --server URL`.
pub fn explain(server: &str, id: &str) -> anyhow::Result<()> {
    print(&client(server)?.get(&format!("/v1/records/{}", enc(id))).map_err(anyhow::Error::msg)?)
}
