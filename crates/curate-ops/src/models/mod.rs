//! Operators that run models from local files (`embed`, `model_score`, `fasttext_classify`).
//! Nothing is downloaded: `model` names a file or directory, relative paths starting where the
//! pipeline spec is. Each operator's cache key holds the digest of the model files it read,
//! so new weights recompute the step while a threshold change downstream does not.

pub mod embed;
pub mod fasttext_classify;
pub mod model_score;

use std::path::PathBuf;

use arrow_array::{Array, StringArray};
use curate_core::operator::BuildContext;

/// `model` as given, or under the spec's directory when relative.
pub(crate) fn model_path(model: &str, ctx: &BuildContext) -> PathBuf {
    let path = PathBuf::from(model);
    if path.is_relative() {
        ctx.base_dir.join(path)
    } else {
        path
    }
}

/// The non-null texts of `column` and their rows.
pub(crate) fn present(column: &StringArray) -> (Vec<usize>, Vec<&str>) {
    (0..column.len()).filter(|&r| column.is_valid(r)).map(|r| (r, column.value(r))).unzip()
}
