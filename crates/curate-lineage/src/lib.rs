//! Record lineage beside the data (ARCHITECTURE.md §5): every output file of a run gets a
//! Parquet sidecar written in the same pass (one row per record: id, source, and for
//! rejects the dropping step and reason) and a small id index (bloom filter plus sorted,
//! compressed id blocks), so `explain` and `forget` find a record's rows by reading a few
//! bytes of each file instead of a registry row per record.

#![warn(missing_docs)]

pub mod index;
pub mod pack;
pub mod sidecar;

pub use index::{IdIndex, IndexBuilder, IndexError, ReadAt};
pub use pack::{write_pack, BloomPack};
pub use sidecar::{LineageError, LineageRow, OperatorInfo, SidecarWriter};
