//! curate's core: the record model, the operator contract, pipeline specs, the planner and
//! the local executor. Knows nothing of file formats, the CLI or services.

pub mod cache;
mod duplicate_ids;
pub mod exec;
pub mod global;
pub mod io;
pub mod json_rows;
pub mod key;
pub mod operator;
mod quarantine;
pub mod record;
pub mod spec;
pub mod stats;
