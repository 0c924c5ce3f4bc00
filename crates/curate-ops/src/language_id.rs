//! `language_id`: the language of each text and the detector's confidence as columns,
//! optionally dropping texts outside a set of languages or below a confidence.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use curate_core::operator::{BuildContext, BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator, Verdicts};
use curate_fasttext::FastText;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::models::fasttext_classify::{label_name, load_model, top_labels};
use crate::util::{string_column, with_columns};

/// Parameters of `language_id`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LanguageIdParams {
    /// Column holding the text.
    #[serde(default = "crate::util::text_column")]
    pub column: String,
    /// Column receiving the ISO 639-1 code of the detected language (null when none).
    #[serde(default = "default_lang_column")]
    pub lang_column: String,
    /// Column receiving the detector's confidence in `[0, 1]` (null when no language).
    #[serde(default = "default_score_column")]
    pub score_column: String,
    /// ISO 639-1 codes of the languages to keep; empty keeps every language.
    #[serde(default)]
    pub keep: Vec<String>,
    /// Drop texts whose confidence is below this (texts with no detectable language score 0).
    #[serde(default)]
    pub min_score: f64,
    /// A fastText language identification model (e.g. `lid.176.ftz`) to use instead of the
    /// built-in detector; its labels (`__label__xx`) become the codes.
    #[serde(default)]
    pub model: Option<String>,
}

fn default_lang_column() -> String {
    "lang".into()
}

fn default_score_column() -> String {
    "lang_score".into()
}

/// Language identification with curate-lang's built-in models or a fastText model.
pub struct LanguageId {
    params: LanguageIdParams,
    /// The fastText model and the digest of its file, when `model` is set.
    fasttext: Option<(FastText, String)>,
}

impl BuiltinOp for LanguageId {
    const NAME: &'static str = "language_id";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Map;
    const SUMMARY: &'static str =
        "Language (ISO 639-1) and confidence as columns, built-in models or a fastText model; keep: [codes] and min_score drop the rest";
    type Params = LanguageIdParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        Self::new_in(params, &BuildContext::default())
    }

    fn new_in(params: Self::Params, ctx: &BuildContext) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&params.min_score) {
            return Err(format!("min_score ({}) must lie in [0, 1]", params.min_score));
        }
        let fasttext = params.model.as_deref().map(|m| load_model(m, ctx)).transpose()?;
        let supported: Vec<&str> = match &fasttext {
            Some((model, _)) => model.labels().iter().map(|l| label_name(l)).collect(),
            None => curate_lang::supported().to_vec(),
        };
        if let Some(bad) = params.keep.iter().find(|k| !supported.contains(&k.as_str())) {
            return Err(format!("keep: `{bad}` is not a language the detector knows; codes known: {}", supported.join(", ")));
        }
        if params.lang_column == params.score_column {
            return Err(format!("lang_column and score_column are both `{}`", params.lang_column));
        }
        Ok(LanguageId { params, fasttext })
    }
}

impl Operator for LanguageId {
    fn content_key(&self) -> Option<String> {
        self.fasttext.as_ref().map(|(_, digest)| format!("model {digest}"))
    }

    fn columns(&self) -> Columns {
        Columns {
            reads: vec![self.params.column.clone()],
            writes: vec![
                (self.params.lang_column.clone(), DataType::Utf8),
                (self.params.score_column.clone(), DataType::Float64),
            ],
        }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let text = string_column(&batch, &self.params.column)?;
        let rows = batch.num_rows();
        let mut langs = StringBuilder::with_capacity(rows, rows * 2);
        let mut scores = Float64Builder::with_capacity(rows);
        let mut verdicts = Verdicts::keep_all(rows);
        let found: Vec<Option<(&str, f64)>> = match &self.fasttext {
            Some((model, _)) => top_labels(model, text).into_iter().map(|t| t.filter(|(l, _)| !l.is_empty()).map(|(l, p)| (l, f64::from(p)))).collect(),
            None => (0..rows).map(|row| if text.is_null(row) { None } else { curate_lang::detect(text.value(row)).map(|d| (d.lang, d.score)) }).collect(),
        };
        for (row, found) in found.into_iter().enumerate() {
            langs.append_option(found.map(|d| d.0));
            scores.append_option(found.map(|d| d.1));
            let score = found.map_or(0.0, |d| d.1);
            // An unsure guess is reported as such before its language is judged.
            if score < self.params.min_score {
                verdicts.drop_row(row, "language_id:low_score");
            } else if !self.params.keep.is_empty() && !found.is_some_and(|d| self.params.keep.iter().any(|k| k == d.0)) {
                verdicts.drop_row(row, "language_id:not_kept");
            }
        }
        let batch = with_columns(
            &batch,
            vec![(&self.params.lang_column, Arc::new(langs.finish())), (&self.params.score_column, Arc::new(scores.finish()))],
        )?;
        Ok(OpOutput { batch, verdicts: Some(verdicts) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow_array::{Float64Array, StringArray};
    use arrow_schema::{Field, Schema};

    const SENTENCES: &[(&str, &str)] = &[
        ("en", "The quick brown fox jumps over the lazy dog while the farmer watches from the porch."),
        ("en", "Please read the documentation carefully before installing the new version of the software."),
        ("de", "Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer zusieht."),
        ("de", "Bitte lesen Sie die Dokumentation sorgfältig, bevor Sie die neue Version installieren."),
        ("fr", "Le renard brun rapide saute par-dessus le chien paresseux pendant que le fermier regarde."),
        ("fr", "Veuillez lire attentivement la documentation avant d'installer la nouvelle version du logiciel."),
        ("es", "El rápido zorro marrón salta sobre el perro perezoso mientras el granjero observa desde el porche."),
        ("es", "Por favor, lea atentamente la documentación antes de instalar la nueva versión del programa."),
        ("it", "La volpe marrone veloce salta sopra il cane pigro mentre il contadino guarda dalla veranda."),
        ("pt", "A rápida raposa marrom pula sobre o cão preguiçoso enquanto o fazendeiro observa da varanda."),
        ("ru", "Быстрая коричневая лиса прыгает через ленивую собаку, пока фермер смотрит с крыльца."),
        ("ja", "素早い茶色の狐が怠け者の犬を飛び越え、農夫がそれをポーチから眺めている。"),
        ("zh", "敏捷的棕色狐狸跳过了懒狗，农夫在门廊上看着这一切。"),
    ];

    fn batch(texts: Vec<Option<&str>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(texts))]).unwrap()
    }

    fn params(keep: &[&str], min_score: f64) -> LanguageIdParams {
        LanguageIdParams {
            column: "text".into(),
            lang_column: "lang".into(),
            score_column: "lang_score".into(),
            keep: keep.iter().map(|s| s.to_string()).collect(),
            min_score,
            model: None,
        }
    }

    /// Languages, scores and drop reasons per row.
    type Outcome = (Vec<Option<String>>, Vec<Option<f64>>, Vec<Option<String>>);

    fn run(p: LanguageIdParams, texts: Vec<Option<&str>>) -> Outcome {
        let out = LanguageId::new(p).unwrap().process(batch(texts)).unwrap();
        let langs = out.batch.column_by_name("lang").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        let scores = out.batch.column_by_name("lang_score").unwrap().as_any().downcast_ref::<Float64Array>().unwrap().clone();
        let v = out.verdicts.unwrap();
        (
            (0..langs.len()).map(|i| langs.is_valid(i).then(|| langs.value(i).to_string())).collect(),
            (0..scores.len()).map(|i| scores.is_valid(i).then(|| scores.value(i))).collect(),
            (0..v.len()).map(|i| v.reason(i).map(|r| r.to_string())).collect(),
        )
    }

    #[test]
    fn identifies_clear_sentences() {
        let (langs, scores, reasons) = run(params(&[], 0.0), SENTENCES.iter().map(|(_, t)| Some(*t)).collect());
        let expected: Vec<Option<String>> = SENTENCES.iter().map(|(l, _)| Some(l.to_string())).collect();
        assert_eq!(langs, expected);
        assert!(scores.iter().all(|s| s.is_some_and(|s| (0.0..=1.0).contains(&s))), "{scores:?}");
        assert!(reasons.iter().all(Option::is_none));
    }

    #[test]
    fn keep_and_min_score_decide_drops() {
        let texts = vec![Some(SENTENCES[0].1), Some(SENTENCES[2].1), Some("1234 5678"), None];
        let (langs, scores, reasons) = run(params(&["en", "fr"], 0.0), texts.clone());
        assert_eq!(langs, vec![Some("en".into()), Some("de".into()), None, None]);
        assert_eq!(scores[2..], [None, None]);
        assert_eq!(reasons, vec![None, Some("language_id:not_kept".into()), Some("language_id:not_kept".into()), Some("language_id:not_kept".into())]);

        // A bar above every score: low_score takes precedence over not_kept.
        let (_, _, reasons) = run(params(&["en"], 1.0), vec![Some("Der Hund."), Some(SENTENCES[0].1)]);
        assert_eq!(reasons[0].as_deref(), Some("language_id:low_score"));

        // Without a keep list only confidence matters; nothing is dropped at 0.
        let (_, _, reasons) = run(params(&[], 0.0), texts);
        assert!(reasons.iter().all(Option::is_none));
    }

    #[test]
    fn min_score_splits_at_the_score() {
        let (_, scores, _) = run(params(&[], 0.0), vec![Some("Das ist gut.")]);
        let s = scores[0].unwrap();
        let (_, _, at) = run(params(&[], s), vec![Some("Das ist gut.")]);
        assert_eq!(at, vec![None]);
        if s < 1.0 {
            let (_, _, above) = run(params(&[], (s + 1.0) / 2.0), vec![Some("Das ist gut.")]);
            assert_eq!(above, vec![Some("language_id:low_score".into())]);
        }
    }

    #[test]
    fn rejects_unknown_codes_and_bad_scores() {
        let err = LanguageId::new(params(&["en", "xx"], 0.0)).err().unwrap();
        assert!(err.starts_with("keep: `xx` is not a language the detector knows; codes known: af, "), "{err}");
        assert_eq!(LanguageId::new(params(&[], 1.5)).err().as_deref(), Some("min_score (1.5) must lie in [0, 1]"));
    }
}
