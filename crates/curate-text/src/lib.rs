//! Heuristic text quality filters with the exact rules of datatrove 0.10.1:
//! [`gopher_quality`], [`gopher_repetition`], [`c4`] (`C4QualityFilter`) and
//! [`fineweb_quality`].
//!
//! A [`Doc`] computes each split of a text (spaCy-compatible words, lines) once; every
//! filter reads that shared view. Each filter module has a `Params` (datatrove's
//! defaults, deserialisable from JSON), computes named signals for every document and
//! returns a [`Decision`] whose drop reason is `<filter>:<datatrove reason>`.
//!
//! ```
//! use curate_text::{c4, fineweb_quality, gopher_quality, gopher_repetition, Doc};
//!
//! let text = "The cat sat on the mat. It was a sunny day.\nShort\n";
//! let doc = Doc::new(text);
//! let (signals, decision) = gopher_quality::evaluate(&doc, &gopher_quality::Params::default());
//! assert_eq!(signals.n_words, 14);
//! assert_eq!(decision.reason().map(|r| r.to_string()).as_deref(), Some("gopher_quality:gopher_short_doc"));
//!
//! // The repetition filter can also stop at the first failing rule, as datatrove does.
//! let _ = gopher_repetition::check(&doc, &gopher_repetition::Params::default());
//!
//! // C4 may rewrite the text; later filters then need a `Doc` of the new text.
//! let p = c4::Params { filter_no_terminal_punct: false, min_num_sentences: 1, ..Default::default() };
//! let out = c4::evaluate(&doc, &p);
//! assert_eq!(out.text, "The cat sat on the mat. It was a sunny day.");
//! let (_, d) = fineweb_quality::evaluate(&Doc::new(&out.text), &Default::default());
//! assert!(d.is_keep());
//! ```

#![warn(missing_docs)]

pub mod c4;
mod chars;
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
pub use doc::{Doc, WordSplit};
