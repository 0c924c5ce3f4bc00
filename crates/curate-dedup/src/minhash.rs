//! MinHash LSH near-duplicate detection.
//!
//! Pipeline (see [`MinHashDedup::run`]):
//! 1. shingles: word n-grams of the normalised text, each hashed to 64 bits (xxh3, seeded);
//! 2. signature: `bands * rows` minima of `(a_i * h + b_i) mod (2^31 - 1)` over the shingles
//!    (a 31-bit universal family: products fit in 64 bits, so the loop vectorises; the lost
//!    resolution only adds ~2^-31 chance collisions per value, and every candidate is verified
//!    on exact 64-bit shingle sets anyway);
//! 3. band keys: one 64-bit hash per band of `rows` minima (band index mixed into the seed);
//! 4. buckets: records grouped by band key through the bounded-memory [`crate::spill`];
//! 5. candidate pairs from bucket collisions, verified by exact Jaccard on shingle sets;
//! 6. union-find over verified pairs; the survivor of each cluster is the greatest
//!    [`SortKey`], ties to the smallest id, so results do not depend on input order.
//!
//! A [`LshIndex`] persists survivors (band keys + shingle sets) so that a later run dedups new
//! records against old ones without reprocessing them.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{DedupError, Result};
use crate::exact::{normalize_into, TextNorm};
use crate::fileformat::{FramedReader, FramedWriter};
use crate::keep::{beats, SortKey};
use crate::spill::{SpillConfig, SpillWriter};

const MERSENNE_31: u64 = (1 << 31) - 1;
/// Buckets up to this size contribute all their pairs; larger ones (typically exact-duplicate
/// floods) contribute a star plus a chain, which keeps candidate generation linear.
const ALL_PAIRS_MAX_BUCKET: usize = 32;

/// MinHash LSH parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct MinHashParams {
    /// Words per shingle (default 5).
    pub ngram: usize,
    /// Number of LSH bands (default 14).
    pub bands: usize,
    /// MinHash rows per band (default 8); `bands * rows` permutations in total.
    pub rows: usize,
    /// Minimum exact Jaccard for a candidate pair to count as duplicates (default 0.8).
    pub threshold: f64,
    /// Seed of the shingle hash and permutations; indexes only match with the same seed.
    pub seed: u64,
    /// Normalisation before shingling; must collapse whitespace (default `lowercase_punct`).
    pub norm: TextNorm,
}

impl Default for MinHashParams {
    fn default() -> Self {
        MinHashParams {
            ngram: 5,
            bands: 14,
            rows: 8,
            threshold: 0.8,
            seed: 0x6375_7261_7465,
            norm: TextNorm::LowercasePunct,
        }
    }
}

impl MinHashParams {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if !(1..=64).contains(&self.ngram) {
            return Err(DedupError::param(
                "ngram",
                format!("{} is not in 1..=64", self.ngram),
            ));
        }
        if self.bands == 0 {
            return Err(DedupError::param("bands", "must be at least 1"));
        }
        if self.rows == 0 {
            return Err(DedupError::param("rows", "must be at least 1"));
        }
        if self.bands * self.rows > 4096 {
            return Err(DedupError::param(
                "bands",
                format!(
                    "bands * rows = {} exceeds 4096 permutations",
                    self.bands * self.rows
                ),
            ));
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(DedupError::param(
                "threshold",
                format!("{} is not in (0, 1]", self.threshold),
            ));
        }
        if self.norm == TextNorm::None {
            return Err(DedupError::param(
                "normalization",
                "minhash shingles words, so it needs `whitespace` or `lowercase_punct`",
            ));
        }
        Ok(())
    }

    /// Jaccard at which a pair becomes a candidate with probability 1/2: `(1/bands)^(1/rows)`.
    pub fn lsh_threshold(&self) -> f64 {
        (1.0 / self.bands as f64).powf(1.0 / self.rows as f64)
    }

    /// The fields that change shingles or band keys, in the words used by error messages.
    fn fingerprint(&self) -> String {
        format!(
            "ngram={} bands={} rows={} seed={:#x} normalization={}",
            self.ngram,
            self.bands,
            self.rows,
            self.seed,
            self.norm.as_str()
        )
    }
}

/// SplitMix64: expands the seed into permutation coefficients.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `x mod (2^31 - 1)` for `x < 2^62`.
#[inline]
fn mod_mersenne(x: u64) -> u64 {
    let folded = (x & MERSENNE_31) + (x >> 31);
    let r = (folded & MERSENNE_31) + (folded >> 31);
    if r >= MERSENNE_31 {
        r - MERSENNE_31
    } else {
        r
    }
}

/// Computes shingles, signatures and band keys for one parameter set.
#[derive(Debug, Clone)]
pub struct MinHasher {
    params: MinHashParams,
    /// Permutation coefficients, kept as separate arrays so the signature loop vectorises.
    perm_a: Vec<u32>,
    perm_b: Vec<u32>,
}

impl MinHasher {
    /// Validates `params` and derives the permutations from its seed.
    pub fn new(params: MinHashParams) -> Result<Self> {
        params.validate()?;
        let mut state = params.seed;
        let n = params.bands * params.rows;
        let (mut perm_a, mut perm_b) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            // a must be non-zero for (a*h + b) mod p to be a bijection on [0, p).
            perm_a.push((1 + splitmix64(&mut state) % (MERSENNE_31 - 1)) as u32);
            perm_b.push((splitmix64(&mut state) % MERSENNE_31) as u32);
        }
        Ok(MinHasher {
            params,
            perm_a,
            perm_b,
        })
    }

    /// The parameters in use.
    pub fn params(&self) -> &MinHashParams {
        &self.params
    }

    /// Sorted, deduplicated 64-bit hashes of the word n-grams of the normalised text. A text
    /// with fewer than `ngram` words yields one shingle of all its words; an empty one, none.
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let mut norm = String::with_capacity(text.len());
        normalize_into(text, self.params.norm, &mut norm);
        // Normalisation leaves single spaces between words, so an n-gram is a contiguous slice.
        let mut starts = Vec::with_capacity(norm.len() / 4 + 1);
        if !norm.is_empty() {
            starts.push(0);
            starts.extend(
                norm.bytes()
                    .enumerate()
                    .filter(|&(_, b)| b == b' ')
                    .map(|(i, _)| i + 1),
            );
        }
        let n = self.params.ngram;
        let seed = self.params.seed;
        let mut out: Vec<u64> = if starts.is_empty() {
            Vec::new()
        } else if starts.len() <= n {
            vec![xxhash_rust::xxh3::xxh3_64_with_seed(norm.as_bytes(), seed)]
        } else {
            (0..=starts.len() - n)
                .map(|i| {
                    let end = starts.get(i + n).map_or(norm.len(), |&s| s - 1);
                    xxhash_rust::xxh3::xxh3_64_with_seed(&norm.as_bytes()[starts[i]..end], seed)
                })
                .collect()
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The `bands * rows` MinHash values of a shingle set.
    pub fn signature(&self, shingles: &[u64]) -> Vec<u32> {
        let mut mins = vec![u32::MAX; self.perm_a.len()];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.fold_mins_avx2(shingles, &mut mins) };
            return mins;
        }
        self.fold_mins(shingles, &mut mins);
        mins
    }

    /// The same loop compiled for AVX2 (4 lanes of 32x32-bit products instead of SSE2's 2):
    /// the signature is most of the CPU time, and release builds target baseline x86-64.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn fold_mins_avx2(&self, shingles: &[u64], mins: &mut [u32]) {
        self.fold_mins(shingles, mins);
    }

    #[inline(always)]
    fn fold_mins(&self, shingles: &[u64], mins: &mut [u32]) {
        for &h in shingles {
            // h mod p, using 2^31 = 1 (mod p): all 64 hash bits count, none are truncated.
            // Going through u32 tells the compiler the product is 32x32 bits (pmuludq).
            let h = u64::from(mod_mersenne((h & MERSENNE_31) + (h >> 31)) as u32);
            for ((m, &a), &b) in mins.iter_mut().zip(&self.perm_a).zip(&self.perm_b) {
                let v = mod_mersenne(u64::from(a) * h + u64::from(b)) as u32;
                *m = (*m).min(v);
            }
        }
    }

    /// One key per band; empty for an empty shingle set, which therefore never collides
    /// (empty texts are left to exact dedup).
    pub fn band_keys(&self, shingles: &[u64]) -> Vec<u64> {
        if shingles.is_empty() {
            return Vec::new();
        }
        let sig = self.signature(shingles);
        let mut bytes = Vec::with_capacity(self.params.rows * 4);
        sig.chunks(self.params.rows)
            .enumerate()
            .map(|(band, rows)| {
                bytes.clear();
                bytes.extend(rows.iter().flat_map(|v| v.to_le_bytes()));
                xxhash_rust::xxh3::xxh3_64_with_seed(
                    &bytes,
                    self.params.seed ^ (band as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                )
            })
            .collect()
    }
}

/// Exact Jaccard similarity of two sorted, deduplicated sets; 0 when both are empty.
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Share of equal MinHash values: the estimate of Jaccard similarity two signatures give.
pub fn signature_agreement(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// Candidate pairs `(lo, hi)` from one bucket of record indices sorted ascending: all pairs
/// for small buckets, a star on the first member plus a chain for large ones.
pub fn bucket_candidate_pairs(members: &[u32], out: &mut Vec<(u32, u32)>) {
    if members.len() <= ALL_PAIRS_MAX_BUCKET {
        for (i, &a) in members.iter().enumerate() {
            out.extend(members[i + 1..].iter().map(|&b| (a, b)));
        }
    } else {
        out.extend(members[1..].iter().map(|&b| (members[0], b)));
        out.extend(members.windows(2).skip(1).map(|w| (w[0], w[1])));
    }
}

/// Metadata of one record of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocMeta {
    /// Caller's record id; unique within a run and against a loaded index.
    pub id: u64,
    /// Survivor preference (see [`crate::keep`]).
    pub sort_key: SortKey,
}

/// Random access to record texts by position; read more than once (hashing, verification).
pub trait TextSource {
    /// Number of records.
    fn len(&self) -> usize;
    /// True when there is no record.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes the text of record `idx` into `buf` (replacing its content).
    fn text(&self, idx: usize, buf: &mut String) -> Result<()>;
}

impl<T: AsRef<str>> TextSource for [T] {
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
    fn text(&self, idx: usize, buf: &mut String) -> Result<()> {
        let t = self
            .get(idx)
            .ok_or_else(|| DedupError::param("record index", format!("{idx} is out of range")))?;
        buf.clear();
        buf.push_str(t.as_ref());
        Ok(())
    }
}

/// Outcome for one record of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The record's id.
    pub id: u64,
    /// True if the record survives.
    pub kept: bool,
    /// Id of the cluster's survivor (possibly a record of a loaded index); equals `id` when kept.
    pub cluster_id: u64,
    /// Records in the cluster, including index records it joined.
    pub cluster_size: usize,
    /// For a removed record: verified Jaccard with the survivor (the MinHash estimate when
    /// verification is off). It can be below the threshold
    /// when the record joined the cluster through another member (clusters are transitive).
    pub jaccard: Option<f64>,
}

/// Survivors of earlier runs: their band keys (for lookup) and shingle sets (for verification).
#[derive(Debug, Clone, PartialEq)]
pub struct LshIndex {
    params: MinHashParams,
    ids: Vec<u64>,
    /// `bands` keys per record, record-major.
    band_keys: Vec<u64>,
    /// Shingles of record i are `shingles[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u64>,
    shingles: Vec<u64>,
    /// `(band key, record)` sorted, for binary-search lookup; rebuilt rather than stored.
    buckets: Vec<(u64, u32)>,
}

const INDEX_MAGIC: &[u8; 8] = b"CURMHIDX";
const INDEX_VERSION: u32 = 1;

impl LshIndex {
    /// An empty index for `params`.
    pub fn new(params: &MinHashParams) -> Result<Self> {
        params.validate()?;
        Ok(LshIndex {
            params: params.clone(),
            ids: Vec::new(),
            band_keys: Vec::new(),
            offsets: vec![0],
            shingles: Vec::new(),
            buckets: Vec::new(),
        })
    }

    /// Number of records in the index.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the index holds no record.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Ids of the indexed records, in insertion order.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    fn record_shingles(&self, i: usize) -> &[u64] {
        &self.shingles[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    fn check_params(&self, params: &MinHashParams, path: &Path) -> Result<()> {
        let (mine, theirs) = (self.params.fingerprint(), params.fingerprint());
        if mine != theirs {
            return Err(DedupError::IndexParamsMismatch {
                path: path.to_owned(),
                expected: theirs,
                found: mine,
            });
        }
        Ok(())
    }

    /// Adds records; callers must keep ids unique. Buckets are rebuilt once per call.
    fn extend(&mut self, records: impl IntoIterator<Item = (u64, Vec<u64>, Vec<u64>)>) {
        for (id, keys, shingles) in records {
            let rec = self.ids.len() as u32;
            self.buckets.extend(keys.iter().map(|&k| (k, rec)));
            self.ids.push(id);
            self.band_keys.extend_from_slice(&keys);
            self.shingles.extend_from_slice(&shingles);
            self.offsets.push(self.shingles.len() as u64);
        }
        self.buckets.sort_unstable();
    }

    /// Index records sharing band key `key`.
    fn lookup(&self, key: u64) -> impl Iterator<Item = u32> + '_ {
        let start = self.buckets.partition_point(|&(k, _)| k < key);
        self.buckets[start..]
            .iter()
            .take_while(move |&&(k, _)| k == key)
            .map(|&(_, r)| r)
    }

    /// Writes the index (versioned header with the parameters, xxh3 checksum, atomic rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut w = FramedWriter::create(path, INDEX_MAGIC, INDEX_VERSION)?;
        let p = &self.params;
        for v in [p.ngram, p.bands, p.rows] {
            w.u32(v as u32)?;
        }
        w.u64(p.seed)?;
        w.u32(u32::from(p.norm.to_byte()))?;
        for array in [&self.ids, &self.band_keys, &self.offsets, &self.shingles] {
            w.u64(array.len() as u64)?;
            for chunk in array.chunks(8192) {
                let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
                w.bytes(&bytes)?;
            }
        }
        w.finish()
    }

    /// Loads an index, failing with [`DedupError::IndexParamsMismatch`] if it was built with
    /// a different n-gram size, bands, rows, seed or normalisation than `params`.
    pub fn load(path: &Path, params: &MinHashParams) -> Result<Self> {
        params.validate()?;
        let mut r = FramedReader::open(path, INDEX_MAGIC, INDEX_VERSION)?;
        let (ngram, bands, rows) = (r.u32()? as usize, r.u32()? as usize, r.u32()? as usize);
        let seed = r.u64()?;
        let norm_byte = r.u32()?;
        let norm = u8::try_from(norm_byte)
            .ok()
            .and_then(TextNorm::from_byte)
            .ok_or_else(|| r.corrupt(format!("unknown normalization code {norm_byte}")))?;
        let stored = MinHashParams {
            ngram,
            bands,
            rows,
            seed,
            norm,
            threshold: params.threshold,
        };
        let mut index = LshIndex {
            params: stored,
            ids: Vec::new(),
            band_keys: Vec::new(),
            offsets: Vec::new(),
            shingles: Vec::new(),
            buckets: Vec::new(),
        };
        index.check_params(params, r.path())?;
        let read_array = |r: &mut FramedReader| -> Result<Vec<u64>> {
            let n = r.len(8)?;
            let mut v = Vec::with_capacity(n);
            let mut b = [0u8; 8];
            for _ in 0..n {
                r.fill(&mut b)?;
                v.push(u64::from_le_bytes(b));
            }
            Ok(v)
        };
        let ids = read_array(&mut r)?;
        let band_keys = read_array(&mut r)?;
        let offsets = read_array(&mut r)?;
        let shingles = read_array(&mut r)?;
        let consistent = band_keys.len() == ids.len() * bands
            && offsets.len() == ids.len() + 1
            && offsets.first() == Some(&0)
            && offsets.windows(2).all(|w| w[0] <= w[1])
            && offsets.last().copied() == Some(shingles.len() as u64)
            && ids.len() < u32::MAX as usize;
        if !consistent {
            return Err(r.corrupt("array lengths are inconsistent"));
        }
        r.finish()?;
        let buckets = band_keys
            .chunks(bands)
            .enumerate()
            .flat_map(|(i, keys)| keys.iter().map(move |&k| (k, i as u32)))
            .collect();
        index.ids = ids;
        index.band_keys = band_keys;
        index.offsets = offsets;
        index.shingles = shingles;
        index.buckets = buckets;
        index.buckets.sort_unstable();
        Ok(index)
    }
}

struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            // Path halving keeps trees shallow without recursion.
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // Smaller index as root: arbitrary but deterministic.
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }
}

/// The full MinHash dedup flow with bounded-memory bucket grouping.
#[derive(Debug, Clone)]
pub struct MinHashDedup {
    hasher: MinHasher,
    spill: SpillConfig,
    verify: bool,
}

/// Shingle sets fetched on demand; remembers the last record since pairs are sorted by it.
struct ShingleCache<'a, S: ?Sized> {
    hasher: &'a MinHasher,
    texts: &'a S,
    buf: String,
    last: Option<(usize, Vec<u64>)>,
}

impl<S: TextSource + ?Sized> ShingleCache<'_, S> {
    fn compute(&mut self, idx: usize) -> Result<Vec<u64>> {
        self.texts.text(idx, &mut self.buf)?;
        Ok(self.hasher.shingles(&self.buf))
    }

    fn sticky(&mut self, idx: usize) -> Result<&[u64]> {
        if self.last.as_ref().map(|(i, _)| *i) != Some(idx) {
            let s = self.compute(idx)?;
            self.last = Some((idx, s));
        }
        Ok(self.last.as_ref().map_or(&[][..], |(_, s)| s.as_slice()))
    }
}

impl MinHashDedup {
    /// Validates parameters; spill files go under `spill.dir`.
    pub fn new(params: MinHashParams, spill: SpillConfig) -> Result<Self> {
        Ok(MinHashDedup {
            hasher: MinHasher::new(params)?,
            spill,
            verify: true,
        })
    }

    /// With `false`, every LSH candidate pair counts as a duplicate without the exact Jaccard
    /// check (faster, lower precision), and reported similarities are MinHash estimates.
    pub fn with_verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// The hasher, for engines that compute band keys themselves.
    pub fn hasher(&self) -> &MinHasher {
        &self.hasher
    }

    /// Dedups `docs` (texts from `texts`, same order) among themselves and against `index`;
    /// when an index is given, the run's survivors are added to it. Returns one decision per
    /// doc, in input order. Index records always survive.
    pub fn run<S: TextSource + ?Sized>(
        &self,
        docs: &[DocMeta],
        texts: &S,
        index: Option<&mut LshIndex>,
    ) -> Result<Vec<Decision>> {
        let params = self.hasher.params();
        if docs.len() != texts.len() {
            return Err(DedupError::param(
                "docs",
                format!("{} metadata rows but {} texts", docs.len(), texts.len()),
            ));
        }
        let old = index.as_deref();
        if let Some(ix) = old {
            ix.check_params(params, Path::new("<in-memory index>"))?;
        }
        let n_old = old.map_or(0, LshIndex::len);
        let n_nodes = docs.len() + n_old;
        if n_nodes >= u32::MAX as usize {
            return Err(DedupError::param(
                "docs",
                "a run is limited to 2^32 - 1 records including the index",
            ));
        }
        check_unique_ids(docs, old)?;

        // Map: band keys into the spill; index hits become candidate pairs directly.
        let mut spill = SpillWriter::new(&self.spill)?;
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        let mut cache = ShingleCache {
            hasher: &self.hasher,
            texts,
            buf: String::new(),
            last: None,
        };
        for idx in 0..docs.len() {
            let shingles = cache.compute(idx)?;
            for key in self.hasher.band_keys(&shingles) {
                spill.push(&key.to_be_bytes(), &(idx as u32).to_be_bytes())?;
                if let Some(ix) = old {
                    pairs.extend(ix.lookup(key).map(|r| (idx as u32, docs.len() as u32 + r)));
                }
            }
        }

        // Reduce: one partition at a time, buckets become candidate pairs.
        let reader = spill.finish()?;
        let mut members = Vec::new();
        for p in 0..reader.num_partitions() {
            let part = reader.read_partition(p)?;
            for group in part.groups().filter(|g| g.len() > 1) {
                members.clear();
                members.extend(
                    group
                        .payloads()
                        .filter_map(|b| <[u8; 4]>::try_from(b).ok())
                        .map(u32::from_be_bytes),
                );
                bucket_candidate_pairs(&members, &mut pairs);
            }
        }
        drop(reader);
        pairs.sort_unstable();
        pairs.dedup();

        // Verify: pairs are sorted by their first element, so its shingles are computed once.
        let mut uf = UnionFind::new(n_nodes);
        let mut right_buf = String::new();
        for &(a, b) in &pairs {
            if uf.find(a) == uf.find(b) {
                continue;
            }
            if !self.verify {
                uf.union(a, b);
                continue;
            }
            let b_owned;
            let b_shingles: &[u64] = if (b as usize) < docs.len() {
                texts.text(b as usize, &mut right_buf)?;
                b_owned = self.hasher.shingles(&right_buf);
                &b_owned
            } else {
                old.map_or(&[][..], |ix| ix.record_shingles(b as usize - docs.len()))
            };
            if jaccard(cache.sticky(a as usize)?, b_shingles) >= params.threshold {
                uf.union(a, b);
            }
        }
        drop(pairs);

        // Clusters and survivors.
        let node = |i: usize| -> (SortKey, u64) {
            if i < docs.len() {
                (docs[i].sort_key, docs[i].id)
            } else {
                (SortKey::MAX, old.map_or(0, |ix| ix.ids[i - docs.len()]))
            }
        };
        let mut survivor: HashMap<u32, u32> = HashMap::new();
        let mut size: HashMap<u32, usize> = HashMap::new();
        for i in 0..n_nodes {
            let root = uf.find(i as u32);
            *size.entry(root).or_insert(0) += 1;
            let best = survivor.entry(root).or_insert(i as u32);
            let (bk, bid) = node(*best as usize);
            let (k, id) = node(i);
            if beats(k, id, bk, bid) {
                *best = i as u32;
            }
        }

        let mut decisions = Vec::with_capacity(docs.len());
        let mut surv_cache: Option<(u32, Vec<u64>)> = None;
        let mut own = String::new();
        for (i, doc) in docs.iter().enumerate() {
            let root = uf.find(i as u32);
            let s = survivor.get(&root).copied().unwrap_or(root);
            let cluster_size = size.get(&root).copied().unwrap_or(1);
            let kept = s as usize == i;
            let jaccard_to_survivor = if kept {
                None
            } else {
                if surv_cache.as_ref().map(|(k, _)| *k) != Some(s) {
                    let sh = if (s as usize) < docs.len() {
                        texts.text(s as usize, &mut own)?;
                        self.hasher.shingles(&own)
                    } else {
                        old.map_or_else(Vec::new, |ix| {
                            ix.record_shingles(s as usize - docs.len()).to_vec()
                        })
                    };
                    surv_cache = Some((s, sh));
                }
                texts.text(i, &mut own)?;
                let mine = self.hasher.shingles(&own);
                let theirs = surv_cache.as_ref().map_or(&[][..], |(_, v)| v);
                Some(if self.verify {
                    jaccard(&mine, theirs)
                } else {
                    signature_agreement(&self.hasher.signature(&mine), &self.hasher.signature(theirs))
                })
            };
            decisions.push(Decision {
                id: doc.id,
                kept,
                cluster_id: node(s as usize).1,
                cluster_size,
                jaccard: jaccard_to_survivor,
            });
        }

        if let Some(ix) = index {
            let mut added = Vec::new();
            for (i, d) in decisions.iter().enumerate().filter(|(_, d)| d.kept) {
                texts.text(i, &mut own)?;
                let sh = self.hasher.shingles(&own);
                // Texts without shingles can never match, so indexing them would only cost space.
                if !sh.is_empty() {
                    added.push((d.id, self.hasher.band_keys(&sh), sh));
                }
            }
            ix.extend(added);
        }
        Ok(decisions)
    }
}

fn check_unique_ids(docs: &[DocMeta], index: Option<&LshIndex>) -> Result<()> {
    let mut ids: Vec<u64> = docs
        .iter()
        .map(|d| d.id)
        .chain(index.into_iter().flat_map(|ix| ix.ids.iter().copied()))
        .collect();
    ids.sort_unstable();
    match ids.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(DedupError::DuplicateId(w[0])),
        None => Ok(()),
    }
}
