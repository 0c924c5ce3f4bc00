//! Heuristic text quality filters with the exact rules of datatrove 0.10.1:
//! [`gopher_quality`], [`gopher_repetition`], [`c4`] (`C4QualityFilter`) and
//! [`fineweb_quality`].
//!
//! A [`Doc`] computes each split of a text (spaCy-compatible words, lines) once; every
//! filter reads that shared view. Each filter module has a `Params` (datatrove's
//! defaults, deserialisable from JSON), computes named signals for every document and
//! returns a [`Decision`] whose drop reason is `<filter>:<datatrove reason>`.

mod chars;
pub mod c4;
mod decision;
mod doc;
pub mod fineweb_quality;
pub mod gopher_quality;
pub mod gopher_repetition;
mod hash;
mod table;
#[rustfmt::skip]
mod tables;
pub mod tokenizer;

pub use decision::{Decision, Reason};
pub use doc::Doc;
