//! A persistent map from a 128-bit key to a record id string: the exact-dedup index (content
//! hash -> id of the record kept for it) and the names of MinHash index records (numeric id ->
//! record id).

use std::collections::HashMap;
use std::path::Path;

use crate::error::{DedupError, Result};
use crate::fileformat::{FramedReader, FramedWriter};

const MAGIC: &[u8; 8] = b"CURKEYIX";
const VERSION: u32 = 1;

/// Keys of records published by earlier runs, with their ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyIndex {
    entries: HashMap<u128, String>,
}

impl KeyIndex {
    /// An empty index.
    pub fn new() -> Self {
        KeyIndex::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The id stored for `key`.
    pub fn get(&self, key: u128) -> Option<&str> {
        self.entries.get(&key).map(String::as_str)
    }

    /// The greatest key, for callers that allocate fresh numeric keys above it.
    pub fn max_key(&self) -> Option<u128> {
        self.entries.keys().copied().max()
    }

    /// Adds `key` unless present; the first id stored for a key stays.
    pub fn insert(&mut self, key: u128, id: &str) {
        self.entries.entry(key).or_insert_with(|| id.to_string());
    }

    /// Writes the index sorted by key (versioned header, xxh3 checksum, atomic rename), so
    /// equal indexes give equal files.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut sorted: Vec<(&u128, &String)> = self.entries.iter().collect();
        sorted.sort_unstable();
        let mut w = FramedWriter::create(path, MAGIC, VERSION)?;
        w.u64(sorted.len() as u64)?;
        for (key, id) in sorted {
            w.bytes(&key.to_le_bytes())?;
            let len = u32::try_from(id.len()).map_err(|_| DedupError::param("id", "longer than 4 GiB"))?;
            w.u32(len)?;
            w.bytes(id.as_bytes())?;
        }
        w.finish()
    }

    /// Loads an index written by [`KeyIndex::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let mut r = FramedReader::open(path, MAGIC, VERSION)?;
        let n = r.len(20)?;
        let mut entries = HashMap::with_capacity(n);
        let mut key = [0u8; 16];
        for _ in 0..n {
            r.fill(&mut key)?;
            let len = r.u32()? as usize;
            let mut id = vec![0u8; len.min(1 << 20)];
            if len > id.len() {
                return Err(r.corrupt(format!("id of {len} bytes")));
            }
            r.fill(&mut id)?;
            let id = String::from_utf8(id).map_err(|_| r.corrupt("id is not UTF-8"))?;
            entries.insert(u128::from_le_bytes(key), id);
        }
        r.finish()?;
        Ok(KeyIndex { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_first_id_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.idx");
        let mut ix = KeyIndex::new();
        ix.insert(7, "a");
        ix.insert(u128::MAX, "ünï");
        ix.insert(7, "b");
        ix.save(&path).unwrap();
        let back = KeyIndex::load(&path).unwrap();
        assert_eq!(back, ix);
        assert_eq!(back.get(7), Some("a"));
        assert_eq!(back.max_key(), Some(u128::MAX));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 9;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(KeyIndex::load(&path).unwrap_err().to_string().contains("checksum"));
    }
}
