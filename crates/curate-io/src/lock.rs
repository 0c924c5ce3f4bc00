//! One run at a time per output location.
//!
//! Two runs writing the same output directory would interleave their task files and one of
//! them would commit a version holding both. An advisory lock on a file beside the outputs
//! (`flock`, released by the kernel when the holder exits, even by `kill -9`) makes the
//! second run refuse, naming the holder described in the lock file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::IoError;

/// Name of the lock file in a local output directory.
pub const LOCK_FILE: &str = ".curate-lock";

/// An exclusive hold on an output location, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct OutputLock {
    file: File,
    path: PathBuf,
    /// Process, host and start time, appended to every description.
    origin: String,
}

impl OutputLock {
    /// Takes the lock at `path` for `location`, described as `holder`, or fails at once
    /// with [`IoError::Busy`] describing the current holder.
    pub fn acquire(path: &Path, location: &str, holder: &str) -> Result<Self, IoError> {
        let io = |e: std::io::Error| IoError::Location {
            location: location.to_string(),
            message: format!("cannot lock the output ({}: {e}); choose another output.path or fix its permissions", path.display()),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(busy(&mut file, location)),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let origin = format!("pid {} on {}, started {}", std::process::id(), host_name(), now_utc());
        let lock = OutputLock { file, path: path.to_path_buf(), origin };
        lock.describe(holder).map_err(io)?;
        Ok(lock)
    }

    /// Fails with [`IoError::Busy`] when a run holds the lock at `path`; takes nothing.
    pub fn check_free(path: &Path, location: &str) -> Result<(), IoError> {
        let Ok(mut file) = File::open(path) else { return Ok(()) };
        match file.try_lock_shared() {
            Err(std::fs::TryLockError::WouldBlock) => Err(busy(&mut file, location)),
            _ => Ok(()),
        }
    }

    /// Names the holder (`run 7 of web`) for another process that finds the location busy;
    /// the process, host and start time are added.
    pub fn describe(&self, holder: &str) -> std::io::Result<()> {
        // Written whole, then trimmed: a reader never sees an empty or half description.
        let text = format!("{holder} ({})\n", self.origin);
        let mut f = &self.file;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(text.as_bytes())?;
        f.set_len(text.len() as u64)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The error for a lock someone holds, with the holder's description.
fn busy(file: &mut File, location: &str) -> IoError {
    // The holder writes its description right after taking the lock: give it a moment.
    let mut holder = String::new();
    for _ in 0..100 {
        holder.clear();
        let _ = file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_string(&mut holder));
        if !holder.trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let holder = holder.trim();
    IoError::Busy {
        location: location.to_string(),
        holder: if holder.is_empty() { "another curate run (it has not said which)".into() } else { holder.to_string() },
    }
}

/// This machine's name, as run owners and lock holders record it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn now_utc() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_description() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let first = OutputLock::acquire(&path, "out", "a run").unwrap();
        first.describe("run 7 of web").unwrap();
        match OutputLock::acquire(&path, "out", "a run") {
            Err(IoError::Busy { holder, .. }) => {
                assert!(holder.starts_with(&format!("run 7 of web (pid {} on ", std::process::id())), "{holder}")
            }
            other => panic!("expected busy, got {other:?}"),
        }
        assert!(matches!(OutputLock::check_free(&path, "out"), Err(IoError::Busy { .. })));
        drop(first);
        OutputLock::check_free(&path, "out").unwrap();
        OutputLock::acquire(&path, "out", "a run").unwrap();
    }
}
