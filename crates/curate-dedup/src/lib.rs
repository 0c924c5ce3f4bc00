//! Deduplication algorithms for curate, free of any columnar format so that the engine can
//! wrap them as global (map -> partition -> reduce) operators.
//!
//! * [`exact`]: text normalisation and a 128-bit content hash for exact dedup.
//! * [`url`]: URL canonicalisation and a persistent, seeded Bloom filter.
//! * [`minhash`]: MinHash LSH near-duplicate detection with exact Jaccard verification,
//!   deterministic clustering and a persistent index.
//! * [`semantic`]: semantic dedup: k-means on embeddings, cosine within clusters.
//! * [`spill`]: a bounded-memory external partitioner used to group band buckets.
//! * [`keyindex`]: a persistent key -> record id map (exact-dedup index, MinHash index names).
//! * [`keep`]: the deterministic survivor rule (caller sort key, ties to the smallest id).

#![warn(missing_docs)]

pub mod error;
pub mod exact;
mod fileformat;
pub mod keep;
pub mod keyindex;
pub mod minhash;
pub mod semantic;
pub mod spill;
pub mod url;

pub use error::{DedupError, Result};
pub use exact::{content_hash, normalize, TextNorm};
pub use keep::SortKey;
pub use keyindex::KeyIndex;
pub use minhash::{
    Decision, DocMeta, LshIndex, MinHashDedup, MinHashParams, MinHasher, TextSource,
};
pub use spill::{SpillConfig, SpillReader, SpillWriter};
pub use url::{normalize_url, BloomFilter, UrlNormOptions};
