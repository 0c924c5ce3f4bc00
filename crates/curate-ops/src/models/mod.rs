//! Operators that run models from local files (`embed`, `model_score`, `fasttext_classify`).
//! Nothing is downloaded: `model` names a file or directory, relative paths starting where the
//! pipeline spec is. Each operator's cache key holds the digest of the model files it read,
//! so new weights recompute the step while a threshold change downstream does not.

pub mod embed;
pub mod fasttext_classify;
pub mod model_score;

use std::path::{Path, PathBuf};

use arrow_array::{Array, StringArray};
use curate_core::operator::BuildContext;
use curate_embed::{EmbedOptions, ModelError};

/// `model` as given, or under the spec's directory when relative.
pub(crate) fn model_path(model: &str, ctx: &BuildContext) -> PathBuf {
    let path = PathBuf::from(model);
    if path.is_relative() {
        ctx.base_dir.join(path)
    } else {
        path
    }
}

/// A `curate-embed` model (`Embedder::load` or `Scorer::load`) from an operator's `model`,
/// `max_tokens` and `normalize` parameters, errors naming the parameter.
pub(crate) fn load_encoder<T>(
    load: fn(&Path, &EmbedOptions) -> Result<T, ModelError>,
    model: &str,
    ctx: &BuildContext,
    options: EmbedOptions,
) -> Result<T, String> {
    if options.max_tokens == Some(0) {
        return Err("max_tokens must be at least 1".into());
    }
    load(&model_path(model, ctx), &options).map_err(|e| format!("model: {e}"))
}

/// The non-null texts of `column` and their rows.
pub(crate) fn present(column: &StringArray) -> (Vec<usize>, Vec<&str>) {
    (0..column.len()).filter(|&r| column.is_valid(r)).map(|r| (r, column.value(r))).unzip()
}
