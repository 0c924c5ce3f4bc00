//! Helpers shared by the CLI tests: running the binary, writing specs and inputs, reading outputs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Runs `curate` with `args` in `dir`.
pub fn curate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_curate"))
        .args(args)
        .current_dir(dir)
        .env("CURATE_LOG", "info")
        .output()
        .expect("the curate binary runs")
}

/// Runs `curate` and asserts success, returning stdout.
pub fn curate_ok(dir: &Path, args: &[&str]) -> String {
    curate_env(dir, &[("CURATE_LOG", "info")], args)
}

/// Writes a file, creating parent directories.
pub fn write(path: &Path, content: impl AsRef<[u8]>) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

/// Deterministic pseudo-random words for generated corpora.
pub fn corpus_line(i: usize) -> String {
    const WORDS: [&str; 12] = ["data", "model", "the", "of", "web", "text", "quality", "a", "curate", "token", "set", "page"];
    let mut x = (i as u64).wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let n = 5 + (x % 90) as usize;
    let text: Vec<&str> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            WORDS[(x % 12) as usize]
        })
        .collect();
    format!("{{\"id\":\"r{i}\",\"url\":\"https://ex.org/{i}\",\"n\":{i},\"text\":\"{}\"}}\n", text.join(" "))
}

/// Every file below `dir/sub` with its bytes, keyed by relative path.
pub fn tree(dir: &Path, subs: &[&str]) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in subs {
        let root = dir.join(sub);
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
                }
            }
        }
    }
    out
}

/// All batches of a Parquet file.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap().map(|b| b.unwrap()).collect()
}

/// The parsed `run.json` of an output directory.
pub fn run_json(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap()
}

/// Repository root (for bundled examples).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `curate` with extra environment variables and asserts success, returning stdout.
pub fn curate_env(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_curate"))
        .args(args)
        .current_dir(dir)
        .env("CURATE_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("the curate binary runs");
    assert!(
        out.status.success(),
        "curate {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The string values of column `name` across batches.
pub fn strings(batches: &[RecordBatch], name: &str) -> Vec<String> {
    use arrow_array::cast::AsArray;
    batches
        .iter()
        .flat_map(|b| b.column_by_name(name).unwrap().as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect::<Vec<_>>())
        .collect()
}

/// The `curate` binary at a path any user can reach, for tests that run it as an
/// unprivileged user: the checkout's target directory may sit below a directory only its
/// owner can enter (CI clones anywhere). A hard link (a copy across file systems) in a
/// world-readable directory named by the binary's inode, so re-runs reuse it.
pub fn curate_for_anyone() -> PathBuf {
    static LINKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LINKED.get_or_init(link_for_anyone).clone()
}

fn link_for_anyone() -> PathBuf {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let bin = Path::new(env!("CARGO_BIN_EXE_curate"));
    let meta = std::fs::metadata(bin).unwrap();
    let root = std::env::temp_dir().join("curate-test-bin");
    let dir = root.join(format!("{}-{}", meta.dev(), meta.ino()));
    let dest = dir.join("curate");
    if !dest.exists() {
        // Links of earlier builds would keep their binaries alive.
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&dir).unwrap();
        for d in [&root, &dir] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let tmp = dir.join(format!(".curate-{}", std::process::id()));
        if std::fs::hard_link(bin, &tmp).is_err() {
            std::fs::copy(bin, &tmp).unwrap();
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Another test process may have won the race; either link is the same binary.
        let _ = std::fs::rename(&tmp, &dest);
    }
    dest
}

/// A registry URL on a fresh schema of the local PostgreSQL (`CURATE_TEST_POSTGRES`, else
/// the server `scripts/postgres.sh` starts), named after `prefix`.
pub fn fresh_postgres(prefix: &str) -> String {
    let base = std::env::var("CURATE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
    let mut admin = ::postgres::Client::connect(&base, ::postgres::NoTls)
        .unwrap_or_else(|e| panic!("PostgreSQL unreachable at {base} (scripts/postgres.sh starts it): {e}"));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let schema = format!("{prefix}_{}_{nanos}", std::process::id());
    admin.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}
