//! curate's storage layer: JSONL (plain, gzip, zstd) and Parquet readers and writers over
//! `object_store`, so local paths and `s3://` URLs behave the same.

mod decode;
mod jsonl;
pub mod location;
mod lock;
mod parquet_in;
mod sink;
mod source;
pub mod store;
mod tally;
mod verify;

pub use lock::{host_name, OutputLock, LOCK_FILE};
pub use sink::{parquet_properties, DirSink, LINEAGE_DIR};
pub use source::{list_files, FileSource, ListedFile};
pub use store::{ObjectReader, VersionStore};
pub use tally::Tally;

/// A storage or format error, naming the file or location involved.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A location that cannot be used.
    #[error("{location}: {message}")]
    Location {
        /// The location as written.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A path or glob that matches nothing.
    #[error("no input file matches `{pattern}` (relative paths start at the current directory)")]
    NotFound {
        /// The path or glob.
        pattern: String,
    },
    /// A malformed glob.
    #[error("invalid glob `{pattern}`: {message}")]
    Glob {
        /// The glob.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// The object store refused or failed.
    #[error("{location}: {message}")]
    Store {
        /// The location.
        location: String,
        /// The store's message.
        message: String,
    },
    /// Reading a file failed.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file whose content or schema cannot be used.
    #[error("{file}: {message}")]
    Format {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// Another run holds the output location.
    #[error("{location} is in use by {holder}; wait for it to finish or choose another output.path")]
    Busy {
        /// The output location.
        location: String,
        /// Who holds it, as the holder described itself.
        holder: String,
    },
}
