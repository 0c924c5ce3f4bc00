//! curate's built-in operators.

pub mod length_filter;
pub mod quality;
pub mod select;
mod split_cache;
mod util;

use curate_core::operator::{OpDescriptor, Registry};

/// Every built-in operator. Registering a new one is one line here.
pub fn registry() -> Registry {
    Registry::new(vec![
        OpDescriptor::of::<length_filter::LengthFilter>(),
        OpDescriptor::of::<select::Select>(),
        OpDescriptor::of::<quality::Quality<quality::GopherRepetition>>(),
        OpDescriptor::of::<quality::Quality<quality::GopherQuality>>(),
        OpDescriptor::of::<quality::Quality<quality::C4Quality>>(),
        OpDescriptor::of::<quality::Quality<quality::FinewebQuality>>(),
    ])
}
