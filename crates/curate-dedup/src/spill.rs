//! External partitioner: `(key, payload)` records are hashed by key into P partition files
//! through fixed-size in-memory buffers, then reduced one partition at a time, sorted by key.
//!
//! Memory during the map side is at most `memory_limit` bytes of buffers (each partition owns
//! `memory_limit / P` bytes, allocated once). During the reduce, only one partition is held, so
//! choose P so that `total_bytes / P` fits the reduce budget.
//!
//! Frame layout on disk: `key_len u32 LE | payload_len u32 LE | key | payload`.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{DedupError, Result};

const FRAME_HEADER: usize = 8;
/// Below this per-partition buffer, every record would cost a syscall.
const MIN_BUFFER_PER_PARTITION: usize = 64;

/// Where and how to spill.
#[derive(Debug, Clone)]
pub struct SpillConfig {
    /// Parent directory; each writer creates (and its reader removes) a private subdirectory.
    pub dir: PathBuf,
    /// Number of partition files (P).
    pub partitions: usize,
    /// Upper bound on bytes buffered in memory by the writer, across all partitions.
    pub memory_limit: usize,
}

impl SpillConfig {
    fn validate(&self) -> Result<()> {
        if self.partitions == 0 {
            return Err(DedupError::param("partitions", "must be at least 1"));
        }
        if self.memory_limit / self.partitions < MIN_BUFFER_PER_PARTITION {
            return Err(DedupError::param(
                "memory_limit",
                format!(
                    "{} bytes over {} partitions leaves less than {MIN_BUFFER_PER_PARTITION} bytes each",
                    self.memory_limit, self.partitions
                ),
            ));
        }
        Ok(())
    }
}

/// Partition a key is routed to; exposed so a distributed engine can route identically.
pub fn partition_of(key: &[u8], partitions: usize) -> usize {
    (xxhash_rust::xxh3::xxh3_64(key) % partitions as u64) as usize
}

fn unique_subdir(parent: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(parent).map_err(|e| DedupError::io(parent, e))?;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("spill-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            // Left over from an earlier process that reused our pid: pick the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(DedupError::io(&dir, e)),
        }
    }
}

/// Map side: buffers records per partition and flushes full buffers to partition files.
pub struct SpillWriter {
    dir: Option<PathBuf>,
    files: Vec<File>,
    bufs: Vec<Vec<u8>>,
    buffered: usize,
    peak_buffered: usize,
    records: u64,
}

impl SpillWriter {
    /// Creates the private spill directory and P empty partition files.
    pub fn new(config: &SpillConfig) -> Result<Self> {
        config.validate()?;
        let dir = unique_subdir(&config.dir)?;
        let per_partition = config.memory_limit / config.partitions;
        let mut files = Vec::with_capacity(config.partitions);
        for p in 0..config.partitions {
            let path = dir.join(format!("part-{p:05}.bin"));
            files.push(File::create(&path).map_err(|e| DedupError::io(&path, e))?);
        }
        let bufs = (0..config.partitions)
            .map(|_| Vec::with_capacity(per_partition))
            .collect();
        Ok(SpillWriter {
            dir: Some(dir),
            files,
            bufs,
            buffered: 0,
            peak_buffered: 0,
            records: 0,
        })
    }

    fn part_path(&self, p: usize) -> PathBuf {
        self.dir
            .as_deref()
            .unwrap_or(Path::new(""))
            .join(format!("part-{p:05}.bin"))
    }

    fn flush_partition(&mut self, p: usize) -> Result<()> {
        if self.bufs[p].is_empty() {
            return Ok(());
        }
        if let Err(e) = self.files[p].write_all(&self.bufs[p]) {
            return Err(DedupError::io(self.part_path(p), e));
        }
        self.buffered -= self.bufs[p].len();
        self.bufs[p].clear();
        Ok(())
    }

    /// Appends one record. Keys and payloads are limited to 4 GiB each by the frame format.
    pub fn push(&mut self, key: &[u8], payload: &[u8]) -> Result<()> {
        let (klen, plen) = match (u32::try_from(key.len()), u32::try_from(payload.len())) {
            (Ok(k), Ok(p)) => (k, p),
            _ => {
                return Err(DedupError::param(
                    "spill record",
                    "key and payload must each be under 4 GiB",
                ))
            }
        };
        let p = partition_of(key, self.bufs.len());
        let frame = FRAME_HEADER + key.len() + payload.len();
        let cap = self.bufs[p].capacity();
        if self.bufs[p].len() + frame > cap {
            self.flush_partition(p)?;
        }
        self.records += 1;
        if frame > cap {
            // Oversized records bypass the buffer so the memory bound holds for any input.
            let mut header = [0u8; FRAME_HEADER];
            header[..4].copy_from_slice(&klen.to_le_bytes());
            header[4..].copy_from_slice(&plen.to_le_bytes());
            let f = &mut self.files[p];
            let res = f
                .write_all(&header)
                .and_then(|_| f.write_all(key))
                .and_then(|_| f.write_all(payload));
            return res.map_err(|e| DedupError::io(self.part_path(p), e));
        }
        let buf = &mut self.bufs[p];
        buf.extend_from_slice(&klen.to_le_bytes());
        buf.extend_from_slice(&plen.to_le_bytes());
        buf.extend_from_slice(key);
        buf.extend_from_slice(payload);
        self.buffered += frame;
        self.peak_buffered = self.peak_buffered.max(self.buffered);
        Ok(())
    }

    /// Highest number of bytes held in buffers at any time so far.
    pub fn peak_buffered_bytes(&self) -> usize {
        self.peak_buffered
    }

    /// Bytes allocated for buffers (never grows after construction).
    pub fn buffer_capacity_bytes(&self) -> usize {
        self.bufs.iter().map(Vec::capacity).sum()
    }

    /// Records pushed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Flushes every buffer and hands the partition files to a reader.
    pub fn finish(mut self) -> Result<SpillReader> {
        for p in 0..self.bufs.len() {
            self.flush_partition(p)?;
        }
        let partitions = self.bufs.len();
        Ok(SpillReader {
            dir: self.dir.take(),
            partitions,
        })
    }
}

impl Drop for SpillWriter {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            // Best effort: an abandoned spill must not leak disk, and Drop cannot report errors.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Reduce side: yields partitions one at a time; removes the spill directory when dropped.
pub struct SpillReader {
    dir: Option<PathBuf>,
    partitions: usize,
}

impl SpillReader {
    /// Number of partitions (P).
    pub fn num_partitions(&self) -> usize {
        self.partitions
    }

    /// Loads partition `p` and sorts it by `(key, payload)`, which makes group order and payload
    /// order within a group independent of push order.
    pub fn read_partition(&self, p: usize) -> Result<Partition> {
        if p >= self.partitions {
            return Err(DedupError::param(
                "partition",
                format!("{p} is not below {}", self.partitions),
            ));
        }
        let path = self
            .dir
            .as_deref()
            .unwrap_or(Path::new(""))
            .join(format!("part-{p:05}.bin"));
        let mut data = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| DedupError::io(&path, e))?;
        let mut frames = Vec::new();
        let mut pos = 0usize;
        let corrupt = |reason: &str| DedupError::Corrupt {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        while pos < data.len() {
            let header = data
                .get(pos..pos + FRAME_HEADER)
                .ok_or_else(|| corrupt("truncated frame header"))?;
            let klen = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let plen = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let start = pos + FRAME_HEADER;
            let end = start
                .checked_add(klen + plen)
                .filter(|&e| e <= data.len())
                .ok_or_else(|| corrupt("truncated frame"))?;
            frames.push(Frame { start, klen, plen });
            pos = end;
        }
        let mut part = Partition { data, frames };
        let Partition { data, frames } = &mut part;
        frames.sort_unstable_by(|a, b| {
            (a.key(data), a.payload(data)).cmp(&(b.key(data), b.payload(data)))
        });
        Ok(part)
    }
}

impl Drop for SpillReader {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            // Best effort cleanup, as in SpillWriter::drop.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    start: usize,
    klen: usize,
    plen: usize,
}

impl Frame {
    fn key<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.start..self.start + self.klen]
    }
    fn payload<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.start + self.klen..self.start + self.klen + self.plen]
    }
}

/// One partition in memory, records sorted by key then payload.
#[derive(Debug)]
pub struct Partition {
    data: Vec<u8>,
    frames: Vec<Frame>,
}

impl Partition {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when the partition holds no record.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes of record data held in memory.
    pub fn data_bytes(&self) -> usize {
        self.data.len()
    }

    /// Runs of records sharing a key, in key order.
    pub fn groups(&self) -> impl Iterator<Item = Group<'_>> {
        let mut start = 0;
        std::iter::from_fn(move || {
            if start >= self.frames.len() {
                return None;
            }
            let key = self.frames[start].key(&self.data);
            let len = self.frames[start..]
                .iter()
                .take_while(|f| f.key(&self.data) == key)
                .count();
            let group = Group {
                part: self,
                frames: &self.frames[start..start + len],
                key,
            };
            start += len;
            Some(group)
        })
    }
}

/// Records of one key within a [`Partition`].
pub struct Group<'a> {
    part: &'a Partition,
    frames: &'a [Frame],
    key: &'a [u8],
}

impl<'a> Group<'a> {
    /// The shared key.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// Number of records in the group.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True for a group without records (never yielded by [`Partition::groups`]).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Payloads in ascending byte order.
    pub fn payloads(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let data = &self.part.data;
        self.frames.iter().map(move |f| f.payload(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(dir: &Path, partitions: usize, memory_limit: usize) -> SpillConfig {
        SpillConfig {
            dir: dir.to_owned(),
            partitions,
            memory_limit,
        }
    }

    #[test]
    fn far_more_data_than_memory_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 64 * 1024;
        let mut w = SpillWriter::new(&config(dir.path(), 16, limit)).unwrap();
        let mut expected: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
        let mut total = 0usize;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = (x % 5000).to_be_bytes().to_vec();
            // Mostly small payloads plus a few larger than a partition buffer.
            let plen = if i % 10_000 == 0 {
                10_000
            } else {
                40 + (x % 80) as usize
            };
            let payload: Vec<u8> = (0..plen).map(|j| (i as usize + j) as u8).collect();
            total += key.len() + payload.len() + FRAME_HEADER;
            w.push(&key, &payload).unwrap();
            expected.entry(key).or_default().push(payload);
        }
        assert!(
            total > 200 * limit,
            "test must spill far more than the limit ({total})"
        );
        assert!(
            w.peak_buffered_bytes() <= limit,
            "peak {} > {limit}",
            w.peak_buffered_bytes()
        );
        assert!(w.buffer_capacity_bytes() <= limit);
        assert_eq!(w.records(), 200_000);
        let r = w.finish().unwrap();
        let mut seen = BTreeMap::new();
        let mut max_part = 0;
        for p in 0..r.num_partitions() {
            let part = r.read_partition(p).unwrap();
            max_part = max_part.max(part.data_bytes());
            let mut prev: Option<Vec<u8>> = None;
            for g in part.groups() {
                assert!(
                    prev.as_deref() < Some(g.key()),
                    "groups not sorted or key split"
                );
                prev = Some(g.key().to_vec());
                let payloads: Vec<Vec<u8>> = g.payloads().map(<[u8]>::to_vec).collect();
                assert!(payloads.windows(2).all(|w| w[0] <= w[1]));
                assert_eq!(partition_of(g.key(), 16), p);
                seen.insert(g.key().to_vec(), payloads);
            }
        }
        for v in expected.values_mut() {
            v.sort();
        }
        assert_eq!(seen, expected);
        assert!(max_part < total / 8, "partitions are unbalanced");
    }

    #[test]
    fn directory_is_removed_and_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SpillWriter::new(&config(dir.path(), 2, 1024)).unwrap();
        w.push(b"k", b"v").unwrap();
        let r = w.finish().unwrap();
        assert_eq!(r.read_partition(partition_of(b"k", 2)).unwrap().len(), 1);
        assert!(r
            .read_partition(2)
            .unwrap_err()
            .to_string()
            .contains("partition"));
        drop(r);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let err = SpillWriter::new(&config(dir.path(), 0, 1024))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("partitions"), "{err}");
        let err = SpillWriter::new(&config(dir.path(), 64, 1024))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("memory_limit"), "{err}");
    }
}
