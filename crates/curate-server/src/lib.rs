//! `curate serve` and `curate worker` (ARCHITECTURE.md §6): a REST control plane under
//! `/v1` described by the OpenAPI document it serves, bearer tokens with scopes and an
//! audit log, a durable run queue beside the registry whose tasks workers hold by leases,
//! an orchestrator that plans and commits runs, a reaper, and the web UI.
//!
//! The control plane holds each running run's output lock and runs its plan and commit
//! steps, and watches the inputs of continuous pipelines; workers (threads of the server, or `curate worker` processes anywhere the
//! registry, the store and the output are reachable) run its map and reduce tasks.

#![warn(missing_docs)]

mod api;
mod auth;
pub mod client;
mod metrics;
mod openapi;
mod orchestrator;
mod problem;
mod runs;
mod watch;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use curate_engine::Engine;
use curate_registry::{Registry, RetryPolicy};

pub use auth::{create_token, hash_token};

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] curate_registry::Error),
    /// The registry or store could not be opened.
    #[error(transparent)]
    Datasets(#[from] curate_datasets::Error),
    /// Binding the address or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Talking to the control plane failed (workers, `--server`).
    #[error("{0}")]
    Client(String),
    /// Another `curate serve` is the control plane of this registry.
    #[error("another `curate serve` is the control plane of this registry; stop it, or point CURATE_HOME / CURATE_REGISTRY elsewhere")]
    AlreadyServed,
}

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Worker threads started inside the server (0: only `curate worker` processes).
    pub local_workers: usize,
    /// Map and reduce tasks held at once across every run (`None`: as many as workers take).
    pub max_slots: Option<i64>,
    /// How long a task's lease lasts without a heartbeat.
    pub lease: Duration,
    /// Attempts and backoff of failing tasks.
    pub retry: RetryPolicy,
    /// A run still queued after this long fails.
    pub queue_timeout: Option<Duration>,
    /// Threads each task may use.
    pub task_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            local_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_slots: None,
            lease: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            queue_timeout: Some(Duration::from_secs(24 * 3600)),
            task_threads: 1,
        }
    }
}

/// Registry handles shared by request handlers: each handle serialises its calls on one
/// connection, so several let requests run side by side.
pub(crate) struct Pool {
    handles: Vec<Registry>,
    next: AtomicUsize,
}

impl Pool {
    fn open(engine: &Engine, size: usize) -> Result<Self, ServerError> {
        let handles = (0..size.max(1)).map(|_| engine.home().registry()).collect::<Result<Vec<_>, _>>()?;
        Ok(Pool { handles, next: AtomicUsize::new(0) })
    }

    /// A handle, round robin.
    pub(crate) fn get(&self) -> &Registry {
        &self.handles[self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len()]
    }
}

/// Milliseconds since the Unix epoch, the registry's time unit.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// What every part of the service shares.
pub(crate) struct Service {
    pub(crate) engine: Engine,
    pub(crate) pool: Pool,
    pub(crate) config: ServerConfig,
    /// This server's identity as the holder of plan and commit tasks.
    pub(crate) id: String,
}

/// Runs the service until the process is stopped: the API on `config.listen`, the
/// orchestrator and reaper, and `config.local_workers` worker threads.
pub fn serve(engine: Engine, config: ServerConfig) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let pool = Pool::open(&engine, 8)?;
    let id = format!("server-{}-{}", curate_io::host_name(), std::process::id());
    let service = Arc::new(Service { engine, pool, config: config.clone(), id });
    orchestrator::start(service.clone())?;
    watch::start(service.clone())?;
    for n in 0..config.local_workers {
        let service = service.clone();
        std::thread::Builder::new().name(format!("worker-{n}")).spawn(move || worker::run_local(&service, n))?;
    }
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        tracing::info!(address = %listener.local_addr()?, "curate serve is listening");
        // One line on stdout that scripts wait for.
        println!("listening on http://{}", listener.local_addr()?);
        axum::serve(listener, api::router(service)).await
    })?;
    Ok(())
}
