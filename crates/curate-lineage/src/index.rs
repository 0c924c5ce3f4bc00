//! A per-file id index: which rows of one lineage sidecar carry a key, answered with a few
//! small reads so that `explain` can ask hundreds of files in milliseconds.
//!
//! Layout (little-endian), built once when the file is written and never changed:
//!
//! ```text
//! header     "CURIDX01", entries u64, bloom blocks u64, directory offset u64, directory length u64
//! bloom      split-block bloom filter: 32-byte blocks of eight u32 words, one block per key
//! blocks     sorted (key, row) entries, front-coded, zstd-compressed, KEYS_PER_BLOCK each
//! directory  per block: entries, offset, compressed length (varints) and its first key
//! ```
//!
//! A lookup reads one 32-byte bloom block (about 0.01% false positives), and only when the
//! key may be present the directory and one block.

use std::io::Write;
use std::sync::OnceLock;

/// Why an index could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading the index failed.
    #[error("reading the id index: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not an index this build can read.
    #[error("not a curate id index: {0}")]
    Corrupt(String),
}

const MAGIC: &[u8; 8] = b"CURIDX01";
const HEADER: usize = 40;
const BLOOM_BLOCK: usize = 32;
/// Keys per bloom block at most (6 to 12 once rounded to a power of two): eight bits set
/// per key give about 0.01% false positives, so explain, which asks every file of every
/// run, opens about one index in vain per 10,000 files.
const KEYS_PER_BLOOM_BLOCK: u64 = 12;
const KEYS_PER_BLOCK: usize = 2048;
/// The salts of Parquet's split-block bloom filter: one bit in each of the eight words.
const SALT: [u32; 8] = [0x47b6_137b, 0x4497_4d91, 0x8824_ad5b, 0xa2b7_289d, 0x7054_95c7, 0x2df1_424b, 0x9efc_4947, 0x5c6b_fb31];

/// A stable 64-bit hash of a key: indexes outlive builds, so no std hasher (whose output
/// may change between Rust releases) is used.
pub fn key_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (key.len() as u64).wrapping_mul(K);
    let mut word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    };
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        word(c);
    }
    if !chunks.remainder().is_empty() {
        word(chunks.remainder());
    }
    // splitmix64's finaliser spreads every input bit over the whole word.
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

fn bloom_block(hash: u64, blocks: u64) -> u64 {
    ((hash >> 32) * blocks) >> 32
}

fn bloom_mask(hash: u64) -> [u32; 8] {
    let key = hash as u32;
    SALT.map(|s| 1u32 << (key.wrapping_mul(s) >> 27))
}

/// Bytes of one bloom filter block.
pub const BLOOM_BLOCK_BYTES: u64 = BLOOM_BLOCK as u64;

/// Where `key` falls in a bloom filter of `blocks` blocks: its block, and the bits it
/// needs there.
pub fn bloom_probe(key: &str, blocks: u64) -> (u64, [u32; 8]) {
    let h = key_hash(key.as_bytes());
    (bloom_block(h, blocks), bloom_mask(h))
}

/// Whether a 32-byte bloom block has every bit of `mask` (the key may be present).
pub fn bloom_block_has(block: &[u8], mask: &[u32; 8]) -> bool {
    block.len() >= BLOOM_BLOCK
        && mask.iter().enumerate().all(|(i, m)| {
            let w = u32::from_le_bytes([block[i * 4], block[i * 4 + 1], block[i * 4 + 2], block[i * 4 + 3]]);
            w & m == *m
        })
}

/// Collects (key, row) pairs of one file and writes its index.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    bytes: Vec<u8>,
    entries: Vec<(usize, u32, u64)>,
}

impl IndexBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that `row` carries `key`.
    pub fn add(&mut self, key: &str, row: u64) {
        self.entries.push((self.bytes.len(), key.len() as u32, row));
        self.bytes.extend_from_slice(key.as_bytes());
    }

    /// (key, row) pairs added so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key(&self, e: &(usize, u32, u64)) -> &[u8] {
        &self.bytes[e.0..e.0 + e.1 as usize]
    }

    /// Writes the index; the output depends only on the set of pairs added.
    pub fn write_to(mut self, out: &mut impl Write) -> std::io::Result<()> {
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_unstable_by(|a, b| self.key(a).cmp(self.key(b)).then(a.2.cmp(&b.2)));
        entries.dedup_by(|a, b| a.2 == b.2 && self.key(a) == self.key(b));
        let distinct = entries.windows(2).filter(|w| self.key(&w[0]) != self.key(&w[1])).count() as u64 + u64::from(!entries.is_empty());
        // A power of two, so a key's block in a smaller filter is its block in a larger one
        // shifted right: a run's filters can be laid side by side in one bloom pack.
        let blocks = distinct.div_ceil(KEYS_PER_BLOOM_BLOCK).max(1).next_power_of_two();
        let mut bloom = vec![0u32; blocks as usize * 8];
        for e in &entries {
            let h = key_hash(self.key(e));
            let b = bloom_block(h, blocks) as usize * 8;
            for (w, m) in bloom[b..b + 8].iter_mut().zip(bloom_mask(h)) {
                *w |= m;
            }
        }
        let mut body = Vec::new();
        let mut directory = Vec::new();
        let mut plain = Vec::new();
        for chunk in entries.chunks(KEYS_PER_BLOCK) {
            plain.clear();
            let mut prev: &[u8] = &[];
            for e in chunk {
                let k = self.key(e);
                let shared = k.iter().zip(prev).take_while(|(a, b)| a == b).count();
                varint(&mut plain, shared as u64);
                varint(&mut plain, (k.len() - shared) as u64);
                plain.extend_from_slice(&k[shared..]);
                varint(&mut plain, e.2);
                prev = k;
            }
            let packed = zstd::bulk::compress(&plain, 1)?;
            let first = self.key(&chunk[0]);
            varint(&mut directory, chunk.len() as u64);
            varint(&mut directory, (HEADER + bloom.len() * 4 + body.len()) as u64);
            varint(&mut directory, packed.len() as u64);
            varint(&mut directory, first.len() as u64);
            directory.extend_from_slice(first);
            body.extend_from_slice(&packed);
        }
        let dir_offset = (HEADER + bloom.len() * 4 + body.len()) as u64;
        out.write_all(MAGIC)?;
        for v in [entries.len() as u64, blocks, dir_offset, directory.len() as u64] {
            out.write_all(&v.to_le_bytes())?;
        }
        let mut words = Vec::with_capacity(bloom.len() * 4);
        for w in &bloom {
            words.extend_from_slice(&w.to_le_bytes());
        }
        out.write_all(&words)?;
        out.write_all(&body)?;
        out.write_all(&directory)?;
        Ok(())
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn varint(&mut self) -> Result<u64, IndexError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at).ok_or_else(|| IndexError::Corrupt("truncated varint".into()))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(IndexError::Corrupt("varint too long".into()))
    }

    fn take(&mut self, n: u64) -> Result<&[u8], IndexError> {
        let end = usize::try_from(n).ok().and_then(|n| self.at.checked_add(n)).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| IndexError::Corrupt("truncated entry".into()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// The `N` little-endian words after an 8-byte magic at the start of a file.
pub(crate) fn read_header<const N: usize>(reader: &impl ReadAt, magic: &[u8; 8], what: &str) -> Result<[u64; N], IndexError> {
    let h = reader.read_at(0, 8 + 8 * N)?;
    if &h[..8] != magic {
        return Err(IndexError::Corrupt(format!("not {what}")));
    }
    Ok(std::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&h[8 + i * 8..16 + i * 8]);
        u64::from_le_bytes(w)
    }))
}

/// Random access to an index's bytes: a local file, or a range reader over an object store.
pub trait ReadAt {
    /// Exactly `len` bytes from `offset`.
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>>;
}

impl ReadAt for std::fs::File {
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        usize::try_from(offset)
            .ok()
            .and_then(|o| self.get(o..o.checked_add(len)?))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end of the index"))
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.as_slice().read_at(offset, len)
    }
}

struct BlockRef {
    count: usize,
    offset: u64,
    len: usize,
    first: Vec<u8>,
}

/// An opened id index.
pub struct IdIndex<R> {
    reader: R,
    entries: u64,
    bloom_blocks: u64,
    dir_offset: u64,
    dir_len: u64,
    directory: OnceLock<Vec<BlockRef>>,
    bloom: OnceLock<Vec<u8>>,
}

impl<R: ReadAt> IdIndex<R> {
    /// Reads the header.
    pub fn open(reader: R) -> Result<Self, IndexError> {
        let [entries, bloom_blocks, dir_offset, dir_len] = read_header(&reader, MAGIC, "an id index")?;
        if bloom_blocks == 0 || bloom_blocks > (1 << 32) {
            return Err(IndexError::Corrupt(format!("{bloom_blocks} bloom blocks")));
        }
        Ok(IdIndex { reader, entries, bloom_blocks, dir_offset, dir_len, directory: OnceLock::new(), bloom: OnceLock::new() })
    }

    /// (key, row) pairs in the index.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Reads the whole bloom filter once, for callers about to test many keys.
    pub fn load_bloom(&self) -> Result<(), IndexError> {
        if self.bloom.get().is_none() {
            let bytes = self.reader.read_at(HEADER as u64, self.bloom_blocks as usize * BLOOM_BLOCK)?;
            let _ = self.bloom.set(bytes);
        }
        Ok(())
    }

    /// Blocks of the bloom filter.
    pub fn bloom_blocks(&self) -> u64 {
        self.bloom_blocks
    }

    /// Bloom blocks `[first, first + n)`, to copy into a bloom pack.
    pub fn bloom_range(&self, first: u64, n: u64) -> Result<Vec<u8>, IndexError> {
        if first + n > self.bloom_blocks {
            return Err(IndexError::Corrupt(format!("bloom blocks {first}..{} of {}", first + n, self.bloom_blocks)));
        }
        Ok(self.reader.read_at(HEADER as u64 + first * BLOOM_BLOCK_BYTES, (n * BLOOM_BLOCK_BYTES) as usize)?)
    }

    /// False when `key` is certainly absent; true when it may be present.
    pub fn may_contain(&self, key: &str) -> Result<bool, IndexError> {
        let (block, mask) = bloom_probe(key, self.bloom_blocks);
        let at = block as usize * BLOOM_BLOCK;
        let block = match self.bloom.get() {
            Some(all) => all[at..at + BLOOM_BLOCK].to_vec(),
            None => self.reader.read_at((HEADER + at) as u64, BLOOM_BLOCK)?,
        };
        Ok(bloom_block_has(&block, &mask))
    }

    fn directory(&self) -> Result<&[BlockRef], IndexError> {
        if let Some(d) = self.directory.get() {
            return Ok(d);
        }
        let len = usize::try_from(self.dir_len).map_err(|_| IndexError::Corrupt("directory too large".into()))?;
        let bytes = self.reader.read_at(self.dir_offset, len)?;
        let mut c = Cursor { bytes: &bytes, at: 0 };
        let mut dir = Vec::new();
        while !c.done() {
            let (count, offset, len) = (c.varint()? as usize, c.varint()?, c.varint()? as usize);
            let klen = c.varint()?;
            dir.push(BlockRef { count, offset, len, first: c.take(klen)?.to_vec() });
        }
        Ok(self.directory.get_or_init(|| dir))
    }

    fn block(&self, b: &BlockRef) -> Result<Vec<(Vec<u8>, u64)>, IndexError> {
        let packed = self.reader.read_at(b.offset, b.len)?;
        let plain = zstd::bulk::decompress(&packed, b.count.saturating_mul(64).max(1 << 16))
            .or_else(|_| zstd::stream::decode_all(packed.as_slice()))?;
        let mut c = Cursor { bytes: &plain, at: 0 };
        let mut out: Vec<(Vec<u8>, u64)> = Vec::with_capacity(b.count);
        let mut prev: Vec<u8> = Vec::new();
        for _ in 0..b.count {
            let shared = c.varint()? as usize;
            let suffix = c.varint()?;
            if shared > prev.len() {
                return Err(IndexError::Corrupt("front coding past the previous key".into()));
            }
            let mut key = prev[..shared].to_vec();
            key.extend_from_slice(c.take(suffix)?);
            let row = c.varint()?;
            prev.clone_from(&key);
            out.push((key, row));
        }
        Ok(out)
    }

    /// Rows carrying `key`, ascending.
    pub fn rows(&self, key: &str) -> Result<Vec<u64>, IndexError> {
        if !self.may_contain(key)? {
            return Ok(Vec::new());
        }
        self.rows_unfiltered(key)
    }

    /// Rows carrying `key`, without asking the bloom filter first (for callers that asked
    /// a copy of it in a bloom pack).
    pub fn rows_unfiltered(&self, key: &str) -> Result<Vec<u64>, IndexError> {
        let key = key.as_bytes();
        let dir = self.directory()?;
        // Equal keys may straddle a block boundary: start at the last block beginning below
        // the key and go on while blocks may still hold it.
        let start = dir.partition_point(|b| b.first.as_slice() < key).saturating_sub(1);
        let mut rows = Vec::new();
        for b in dir[start..].iter().take_while(|b| b.first.as_slice() <= key) {
            rows.extend(self.block(b)?.into_iter().filter(|(k, _)| k == key).map(|(_, r)| r));
        }
        Ok(rows)
    }

    /// Every (key, row) pair in key order.
    pub fn all(&self) -> Result<Vec<(String, u64)>, IndexError> {
        let mut out = Vec::with_capacity(self.entries as usize);
        for b in self.directory()? {
            for (k, r) in self.block(b)? {
                out.push((String::from_utf8(k).map_err(|_| IndexError::Corrupt("key is not UTF-8".into()))?, r));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(pairs: &[(&str, u64)]) -> IdIndex<Vec<u8>> {
        let mut b = IndexBuilder::new();
        for (k, r) in pairs {
            b.add(k, *r);
        }
        let mut out = Vec::new();
        b.write_to(&mut out).expect("write");
        IdIndex::open(out).expect("open")
    }

    #[test]
    fn finds_every_row_of_every_key_and_nothing_else() {
        // Enough keys for several blocks, with a run of equal keys across a boundary.
        let mut pairs: Vec<(String, u64)> = (0..10_000u64).map(|i| (format!("doc-{:09}", (i * 7919) % 10_000), i)).collect();
        pairs.extend((0..3000u64).map(|i| ("doc-000005000".to_string(), 20_000 + i)));
        let refs: Vec<(&str, u64)> = pairs.iter().map(|(k, r)| (k.as_str(), *r)).collect();
        let idx = build(&refs);
        assert_eq!(idx.entries(), 13_000);
        for probe in ["doc-000000000", "doc-000009999", "doc-000001234"] {
            let mut want: Vec<u64> = pairs.iter().filter(|(k, _)| k == probe).map(|(_, r)| *r).collect();
            want.sort_unstable();
            assert_eq!(idx.rows(probe).expect("rows"), want, "{probe}");
        }
        assert_eq!(idx.rows("doc-000005000").expect("rows").len(), 3001);
        let absent = (0..2000).filter(|i| idx.may_contain(&format!("nope-{i}")).expect("probe")).count();
        assert!(absent < 10, "{absent} false positives in 2000");
        for i in 0..200 {
            assert!(idx.rows(&format!("nope-{i}")).expect("rows").is_empty());
        }
        assert_eq!(idx.all().expect("all").len(), 13_000);
    }

    #[test]
    fn an_empty_index_answers_nothing() {
        let idx = build(&[]);
        assert!(idx.rows("a").expect("rows").is_empty());
        assert!(idx.all().expect("all").is_empty());
    }

    #[test]
    fn the_bytes_depend_only_on_the_pairs() {
        let mut a = IndexBuilder::new();
        let mut b = IndexBuilder::new();
        for i in 0..5000u64 {
            a.add(&format!("k{i}"), i);
            b.add(&format!("k{}", 4999 - i), 4999 - i);
        }
        let (mut x, mut y) = (Vec::new(), Vec::new());
        a.write_to(&mut x).expect("write");
        b.write_to(&mut y).expect("write");
        assert_eq!(x, y);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(IdIndex::open(vec![0u8; 64]), Err(IndexError::Corrupt(_))));
        assert!(IdIndex::open(vec![0u8; 3]).is_err());
    }
}
