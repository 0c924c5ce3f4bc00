//! `/metrics` in the Prometheus text format.

use std::fmt::Write as _;

use curate_registry::{JobState, Registry};

use crate::problem::ApiError;

/// Runs by state, tasks by state, records of finished runs, queue depth, lease expiries.
pub(crate) fn render(reg: &Registry) -> Result<String, ApiError> {
    let mut out = String::new();
    let jobs = reg.job_counts()?;
    let _ = writeln!(out, "# HELP curate_runs Runs of the service by state.\n# TYPE curate_runs gauge");
    for state in JobState::ALL {
        let _ = writeln!(out, "curate_runs{{state=\"{}\"}} {}", state.as_str(), jobs.get(&state).copied().unwrap_or(0));
    }
    let tasks = reg.task_counts()?;
    let _ = writeln!(out, "# HELP curate_tasks Tasks of the run queue by state.\n# TYPE curate_tasks gauge");
    for state in ["queued", "leased", "done", "dead", "cancelled"] {
        let _ = writeln!(out, "curate_tasks{{state=\"{state}\"}} {}", tasks.get(state).copied().unwrap_or(0));
    }
    let _ = writeln!(out, "# HELP curate_queue_depth Tasks waiting for a worker.\n# TYPE curate_queue_depth gauge");
    let _ = writeln!(out, "curate_queue_depth {}", tasks.get("queued").copied().unwrap_or(0));
    let (records_in, records_out) = (reg.service_counter("records_in")?, reg.service_counter("records_out")?);
    let _ = writeln!(out, "# HELP curate_records_total Records of succeeded runs.\n# TYPE curate_records_total counter");
    let _ = writeln!(out, "curate_records_total{{direction=\"in\"}} {records_in}");
    let _ = writeln!(out, "curate_records_total{{direction=\"out\"}} {records_out}");
    let _ = writeln!(out, "# HELP curate_lease_expiries_total Task leases that ended without a heartbeat.\n# TYPE curate_lease_expiries_total counter");
    let _ = writeln!(out, "curate_lease_expiries_total {}", reg.service_counter("lease_expiries")?);
    Ok(out)
}
