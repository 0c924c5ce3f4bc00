//! curate's built-in operators.

pub mod dedup;
pub mod html_extract;
pub mod language_id;
pub mod length_filter;
pub mod models;
pub mod normalize;
pub mod pii;
pub mod quality;
pub mod remote;
pub mod select;
mod split_cache;
pub mod word_list;
mod util;

use curate_core::operator::{OpDescriptor, Registry};

/// Every built-in operator. Registering a new one is one line here.
pub fn registry() -> Registry {
    Registry::new(vec![
        OpDescriptor::of::<length_filter::LengthFilter>(),
        OpDescriptor::of::<select::Select>(),
        OpDescriptor::of::<html_extract::HtmlExtract>(),
        OpDescriptor::of::<language_id::LanguageId>(),
        OpDescriptor::of::<normalize::Normalize>(),
        OpDescriptor::of::<word_list::WordListFilter>(),
        OpDescriptor::of::<pii::PiiRedact>(),
        OpDescriptor::of::<quality::Quality<quality::GopherRepetition>>(),
        OpDescriptor::of::<quality::Quality<quality::GopherQuality>>(),
        OpDescriptor::of::<quality::Quality<quality::C4Quality>>(),
        OpDescriptor::of::<quality::Quality<quality::FinewebQuality>>(),
        OpDescriptor::of::<dedup::exact::ExactDedup>(),
        OpDescriptor::of::<dedup::url::UrlDedup>(),
        OpDescriptor::of::<dedup::minhash::MinHashDedupOp>(),
        OpDescriptor::of::<dedup::semantic::SemanticDedup>(),
        OpDescriptor::of::<remote::Remote>(),
        OpDescriptor::of::<models::embed::Embed>(),
        OpDescriptor::of::<models::model_score::ModelScore>(),
        OpDescriptor::of::<models::fasttext_classify::FastTextClassify>(),
    ])
}
