//! Which process runs a run, and whether it is still alive.

use curate_io::host_name;
use curate_registry::RunOwner;

/// The current process as a run owner: host name, pid and start time.
pub fn current_owner() -> RunOwner {
    let pid = std::process::id();
    RunOwner { host: host_name(), pid, start: start_time(pid).unwrap_or_default() }
}

/// True when `owner`'s process is certainly gone: it ran on this host and no process
/// with its pid and start time exists (a pid alone may have been reused). Processes on
/// other hosts, or where `/proc` cannot tell, count as alive.
pub fn is_gone(owner: &RunOwner) -> bool {
    if owner.host != host_name() || owner.start.is_empty() || !std::path::Path::new("/proc/self/stat").exists() {
        return false;
    }
    start_time(owner.pid).is_none_or(|start| start != owner.start)
}

/// Field 22 of `/proc/PID/stat` (start time in clock ticks after boot); `None` when
/// the process does not exist or is a zombie (dead, only waiting to be reaped).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 is the command name in parentheses and may itself hold spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `state` was field 3; field 22 is 19 further on.
    fields.nth(18).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_gone() {
        let me = current_owner();
        assert!(!me.start.is_empty());
        assert!(!is_gone(&me));
        let reused_pid = RunOwner { start: format!("{}0", me.start), ..me.clone() };
        assert!(is_gone(&reused_pid), "same pid, other start time: another process");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let owner = RunOwner { pid: child.id(), ..current_owner() };
        child.wait().unwrap();
        assert!(is_gone(&RunOwner { start: "1".into(), ..owner }));
        let elsewhere = RunOwner { host: "another-host".into(), ..reused_pid };
        assert!(!is_gone(&elsewhere), "other hosts cannot be checked");
    }
}
