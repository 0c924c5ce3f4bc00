use std::path::PathBuf;

/// Why a fastText model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FastTextError {
    /// An error while loading the named file.
    #[error("{}: {source}", path.display())]
    File {
        /// The model file.
        path: PathBuf,
        /// What went wrong in it.
        #[source]
        source: Box<FastTextError>,
    },
    /// The file could not be opened or read.
    #[error("cannot read at byte {offset}: {source}")]
    Io {
        /// Bytes successfully read before the failure.
        offset: u64,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with fastText's magic number.
    #[error("not a fastText model: bad magic number {found:#010x} (expected 0x2f4f16ba)")]
    BadMagic {
        /// The first four bytes, little-endian.
        found: u32,
    },
    /// The file format version is not one this reader knows.
    #[error("unsupported fastText file format version {0} (supported: 11 and 12)")]
    UnsupportedVersion(i32),
    /// The file ends before the model does.
    #[error("truncated at byte {offset} while reading {what}")]
    Truncated {
        /// Where the data ran out.
        offset: u64,
        /// The part of the model being read.
        what: &'static str,
    },
    /// A field holds a value no fastText model can have.
    #[error("invalid model at byte {offset}: {message}")]
    Invalid {
        /// Offset just after the offending field.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// A valid fastText file that this crate cannot predict with.
    #[error("unsupported model: {0}")]
    Unsupported(String),
}
