//! Bloom packs: the bloom filters of a run's id indexes laid side by side in one file,
//! block-major, so asking every file of the run about one key is one contiguous read.
//!
//! ```text
//! header  "CURBLM01", files u64, blocks u64
//! rows    for each block b: for each file f: the 32-byte block of f that b maps to
//! ```
//!
//! Index filters have power-of-two block counts, so a key's block in a file's filter of
//! `B_f` blocks is its block in the pack's `B` blocks shifted right by `log2(B / B_f)`:
//! a smaller filter's blocks are repeated, and every file keeps its own false-positive rate.

use std::io::Write;

use crate::index::{bloom_block_has, bloom_probe, read_header, IdIndex, IndexError, ReadAt, BLOOM_BLOCK_BYTES};

const MAGIC: &[u8; 8] = b"CURBLM01";
const HEADER: u64 = 24;
/// Blocks assembled at a time while writing (memory: this many rows of the pack).
const CHUNK_BLOCKS: u64 = 512;

/// Writes a pack of `indexes`' filters; returns each index's slot, or `None` for one whose
/// filter cannot join a pack (not a power of two: an index from an earlier build).
pub fn write_pack<R: ReadAt>(indexes: &[IdIndex<R>], out: &mut impl Write) -> Result<Vec<Option<u64>>, IndexError> {
    let packable: Vec<usize> = (0..indexes.len()).filter(|&i| indexes[i].bloom_blocks().is_power_of_two()).collect();
    let blocks = packable.iter().map(|&i| indexes[i].bloom_blocks()).max().unwrap_or(1);
    let files = packable.len() as u64;
    out.write_all(MAGIC)?;
    out.write_all(&files.to_le_bytes())?;
    out.write_all(&blocks.to_le_bytes())?;
    let mut first = 0;
    while first < blocks {
        let n = CHUNK_BLOCKS.min(blocks - first);
        // Each file's blocks this chunk maps to, read once.
        let mut slices = Vec::with_capacity(packable.len());
        for &i in &packable {
            let shift = (blocks / indexes[i].bloom_blocks()).trailing_zeros();
            let (lo, hi) = (first >> shift, (first + n - 1) >> shift);
            slices.push((shift, lo, indexes[i].bloom_range(lo, hi - lo + 1)?));
        }
        let mut rows = Vec::with_capacity((n * files * BLOOM_BLOCK_BYTES) as usize);
        for b in first..first + n {
            for (shift, lo, bloom) in &slices {
                let at = (((b >> shift) - lo) * BLOOM_BLOCK_BYTES) as usize;
                rows.extend_from_slice(&bloom[at..at + BLOOM_BLOCK_BYTES as usize]);
            }
        }
        out.write_all(&rows)?;
        first += n;
    }
    let mut slots = vec![None; indexes.len()];
    for (slot, &i) in packable.iter().enumerate() {
        slots[i] = Some(slot as u64);
    }
    Ok(slots)
}

/// An opened bloom pack.
pub struct BloomPack<R> {
    reader: R,
    files: u64,
    blocks: u64,
}

impl<R: ReadAt> BloomPack<R> {
    /// Reads the header.
    pub fn open(reader: R) -> Result<Self, IndexError> {
        let [files, blocks] = read_header(&reader, MAGIC, "a bloom pack")?;
        if !blocks.is_power_of_two() || files > (1 << 32) {
            return Err(IndexError::Corrupt(format!("bloom pack of {files} files and {blocks} blocks")));
        }
        Ok(BloomPack { reader, files, blocks })
    }

    /// Files in the pack.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// For each slot, whether its file may hold `key` (false means certainly not): one
    /// read of one row of the pack.
    pub fn may_contain(&self, key: &str) -> Result<Vec<bool>, IndexError> {
        let (block, mask) = bloom_probe(key, self.blocks);
        let row = self.reader.read_at(HEADER + block * self.files * BLOOM_BLOCK_BYTES, (self.files * BLOOM_BLOCK_BYTES) as usize)?;
        Ok(row.chunks_exact(BLOOM_BLOCK_BYTES as usize).map(|b| bloom_block_has(b, &mask)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexBuilder;

    fn index(keys: impl Iterator<Item = String>) -> IdIndex<Vec<u8>> {
        let mut b = IndexBuilder::new();
        for (row, k) in keys.enumerate() {
            b.add(&k, row as u64);
        }
        let mut out = Vec::new();
        b.write_to(&mut out).expect("write");
        IdIndex::open(out).expect("open")
    }

    #[test]
    fn a_pack_answers_like_each_files_own_filter() {
        // Files of very different sizes, so small filters are repeated in the pack.
        let sizes = [5_000usize, 40, 70_000, 1];
        let indexes: Vec<IdIndex<Vec<u8>>> =
            sizes.iter().enumerate().map(|(f, &n)| index((0..n).map(move |i| format!("f{f}-{i}")))).collect();
        let mut pack = Vec::new();
        let slots = write_pack(&indexes, &mut pack).expect("pack");
        assert_eq!(slots, vec![Some(0), Some(1), Some(2), Some(3)]);
        let pack = BloomPack::open(pack).expect("open");
        assert_eq!(pack.files(), 4);
        for (f, &n) in sizes.iter().enumerate() {
            for i in (0..n).step_by(97) {
                let key = format!("f{f}-{i}");
                let answers = pack.may_contain(&key).expect("probe");
                assert!(answers[f], "{key} must be found in its own file");
                for (g, idx) in indexes.iter().enumerate() {
                    assert_eq!(answers[g], idx.may_contain(&key).expect("probe"), "{key} in file {g}");
                }
            }
        }
        let misses = (0..5000).filter(|i| pack.may_contain(&format!("none-{i}")).expect("probe")[2]).count();
        assert!(misses < 100, "{misses} false positives of 5000 in the largest file");
    }
}
