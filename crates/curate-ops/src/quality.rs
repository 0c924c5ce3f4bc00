//! The heuristic quality filters of `curate-text` (Gopher quality and repetition, C4,
//! FineWeb) as operators: every signal becomes a `<op>_<signal>` Float64 column, and the
//! record is dropped for the first failing rule unless `annotate_only` is set, in which
//! case a later `select` can apply other thresholds without recomputing anything.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use curate_core::operator::{BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator, Verdicts};
use curate_text::{c4, fineweb_quality, gopher_quality, gopher_repetition, Decision, Doc};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::split_cache::SplitCache;
use crate::util::string_column;

/// One `curate-text` filter, seen uniformly.
pub trait TextFilter: Send + Sync + 'static {
    /// Operator name.
    const NAME: &'static str;
    /// Operator version; bump when outputs change.
    const VERSION: &'static str;
    /// One-line description.
    const SUMMARY: &'static str;
    /// Whether the filter may rewrite the text column.
    const REWRITES: bool = false;
    /// The filter's rule parameters (datatrove's defaults).
    type Rules: DeserializeOwned + JsonSchema + Send + Sync;
    /// Signal names, in the order `evaluate` pushes their values.
    fn signal_names(rules: &Self::Rules) -> Vec<String>;
    /// Evaluates one document: pushes one value per signal (NaN for a signal left
    /// uncomputed) and returns the decision and, for filters that rewrite, the new text.
    /// Without `all_signals`, signals past the first failing rule may be left uncomputed.
    fn evaluate<'a>(
        doc: &Doc<'a>,
        rules: &Self::Rules,
        all_signals: bool,
        signals: &mut Vec<f64>,
    ) -> (Decision, Option<Cow<'a, str>>);
}

/// Parameters shared by every quality operator, plus the filter's own rules.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct QualityParams<R> {
    /// The filter's thresholds (datatrove 0.10.1 defaults).
    #[serde(flatten)]
    pub rules: R,
    /// Compute every signal column but drop nothing. Without it, only the signals the
    /// decision needs are computed: a dropped record's signals past its failing rule are
    /// null, as datatrove stops there too, and so are `gopher_repetition`'s top n-gram
    /// signals proven below their thresholds from shorter n-grams and `c4_quality`'s
    /// `num_sentences` once it reaches `min_num_sentences`.
    #[serde(default)]
    pub annotate_only: bool,
    /// Column holding the text.
    #[serde(default = "crate::util::text_column")]
    pub column: String,
}

/// A quality filter as an operator.
pub struct Quality<F: TextFilter> {
    params: QualityParams<F::Rules>,
    columns: Vec<String>,
    filter: PhantomData<F>,
}

impl<F: TextFilter> BuiltinOp for Quality<F> {
    const NAME: &'static str = F::NAME;
    const VERSION: &'static str = F::VERSION;
    const KIND: OpKind = OpKind::Map;
    const SUMMARY: &'static str = F::SUMMARY;
    type Params = QualityParams<F::Rules>;

    fn new(params: Self::Params) -> Result<Self, String> {
        let columns = F::signal_names(&params.rules).into_iter().map(|s| format!("{}_{s}", F::NAME)).collect();
        Ok(Quality { params, columns, filter: PhantomData })
    }
}

impl<F: TextFilter> Operator for Quality<F> {
    fn columns(&self) -> Columns {
        let mut writes: Vec<(String, DataType)> = self.columns.iter().map(|c| (c.clone(), DataType::Float64)).collect();
        if F::REWRITES {
            writes.push((self.params.column.clone(), DataType::Utf8));
        }
        Columns { reads: vec![self.params.column.clone()], writes }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let (out, next) = self.process_sharing(batch, SplitCache::take())?;
        next.store();
        Ok(out)
    }
}

impl<F: TextFilter> Quality<F> {
    /// Processes `batch`, reusing the word splits in `prev` for texts equal to ones it was
    /// made from; returns the output and the splits the next text operator should see.
    fn process_sharing(&self, batch: RecordBatch, prev: SplitCache) -> Result<(OpOutput, SplitCache), OpError> {
        let text = string_column(&batch, &self.params.column)?;
        let rows = batch.num_rows();
        let mut builders: Vec<Float64Builder> = self.columns.iter().map(|_| Float64Builder::with_capacity(rows)).collect();
        let mut rewritten: Option<StringBuilder> = None;
        let mut verdicts = Verdicts::keep_all(rows);
        let mut values = Vec::with_capacity(self.columns.len());
        let mut next = SplitCache::for_column(text);
        for row in 0..rows {
            let value = if text.is_null(row) { "" } else { text.value(row) };
            let doc = prev.doc(value);
            values.clear();
            let (decision, new_text) = F::evaluate(&doc, &self.params.rules, self.params.annotate_only, &mut values);
            next.push(&doc);
            for (b, v) in builders.iter_mut().zip(&values) {
                // NaN (e.g. a mean over no words) is "no value", which select treats as such.
                b.append_option((!v.is_nan()).then_some(*v));
            }
            if let Some(new_text) = new_text.filter(|t| t.as_ref() != value) {
                let b = rewritten.get_or_insert_with(|| {
                    let mut b = StringBuilder::with_capacity(rows, text.value_data().len());
                    for r in 0..row {
                        b.append_option(text.is_valid(r).then(|| text.value(r)));
                    }
                    b
                });
                b.append_value(new_text);
            } else if let Some(b) = rewritten.as_mut() {
                b.append_option(text.is_valid(row).then_some(value));
            }
            if !self.params.annotate_only {
                if let Some(reason) = decision.reason() {
                    verdicts.drop_row(row, &reason.to_string());
                }
            }
        }
        let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        if let Some(mut b) = rewritten {
            let idx = batch.schema().index_of(&self.params.column).map_err(|e| OpError(e.to_string()))?;
            arrays[idx] = Arc::new(b.finish());
        }
        for (name, mut b) in self.columns.iter().zip(builders) {
            let array: ArrayRef = Arc::new(b.finish());
            match fields.iter().position(|f| f.name() == name) {
                Some(i) => arrays[i] = array,
                None => {
                    fields.push(Field::new(name, DataType::Float64, true));
                    arrays.push(array);
                }
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| OpError(e.to_string()))?;
        // A step that tokenised nothing (C4) passes the earlier splits on.
        let next = if next.is_empty() { prev } else { next };
        Ok((OpOutput { batch, verdicts: Some(verdicts) }, next))
    }
}

fn count(n: usize) -> f64 {
    n as f64
}

/// DeepMind Gopher quality rules.
pub struct GopherQuality;

impl TextFilter for GopherQuality {
    const NAME: &'static str = "gopher_quality";
    const VERSION: &'static str = "1";
    const SUMMARY: &'static str = "Gopher quality rules (word counts and lengths, symbols, bullets, ellipses, alphabetic words, stop words), datatrove 0.10.1 semantics";
    type Rules = gopher_quality::Params;

    fn signal_names(_: &Self::Rules) -> Vec<String> {
        [
            "n_words",
            "n_non_symbol_words",
            "mean_word_length",
            "hash_ratio",
            "ellipsis_ratio",
            "bullet_lines_ratio",
            "end_ellipsis_lines_ratio",
            "alpha_words_ratio",
            "stop_words",
        ]
        .map(String::from)
        .to_vec()
    }

    fn evaluate<'a>(doc: &Doc<'a>, rules: &Self::Rules, _: bool, out: &mut Vec<f64>) -> (Decision, Option<Cow<'a, str>>) {
        let (s, d) = gopher_quality::evaluate(doc, rules);
        out.extend([
            count(s.n_words),
            count(s.n_non_symbol_words),
            s.avg_word_length,
            s.hash_ratio,
            s.ellipsis_ratio,
            s.bullet_lines_ratio,
            s.end_ellipsis_lines_ratio,
            s.alpha_words_ratio,
            count(s.stop_words),
        ]);
        (d, None)
    }
}

/// DeepMind Gopher repetition rules.
pub struct GopherRepetition;

impl TextFilter for GopherRepetition {
    const NAME: &'static str = "gopher_repetition";
    const VERSION: &'static str = "3";
    const SUMMARY: &'static str = "Gopher repetition rules (duplicate lines and paragraphs, top and duplicate n-grams), datatrove 0.10.1 semantics";
    type Rules = gopher_repetition::Params;

    fn signal_names(rules: &Self::Rules) -> Vec<String> {
        let mut names: Vec<String> =
            ["dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"].map(String::from).to_vec();
        names.extend(rules.top_n_grams.iter().map(|t| format!("top_{}_gram_char_frac", t.n)));
        names.extend(rules.dup_n_grams.iter().map(|t| format!("dup_{}_gram_char_frac", t.n)));
        names
    }

    fn evaluate<'a>(doc: &Doc<'a>, rules: &Self::Rules, all_signals: bool, out: &mut Vec<f64>) -> (Decision, Option<Cow<'a, str>>) {
        let (s, d) = if all_signals {
            gopher_repetition::evaluate(doc, rules)
        } else {
            gopher_repetition::evaluate_to_drop(doc, rules)
        };
        out.extend([s.dup_para_frac, s.dup_para_char_frac, s.dup_line_frac, s.dup_line_char_frac]);
        // Entries past the failing rule, or proven to pass, were not computed.
        let top = s.top_n_gram_char_frac.iter().map(|v| v.unwrap_or(f64::NAN));
        out.extend(top.chain(std::iter::repeat(f64::NAN)).take(rules.top_n_grams.len()));
        let dup = s.dup_n_gram_char_frac.iter().copied();
        out.extend(dup.chain(std::iter::repeat(f64::NAN)).take(rules.dup_n_grams.len()));
        (d, None)
    }
}

/// The C4 rules, which also remove offending lines from the text.
pub struct C4Quality;

impl TextFilter for C4Quality {
    const NAME: &'static str = "c4_quality";
    const VERSION: &'static str = "2";
    const REWRITES: bool = true;
    const SUMMARY: &'static str = "C4 rules: removes lines without terminal punctuation, short lines, javascript and policy lines; drops lorem ipsum, code and too-short documents (datatrove 0.10.1)";
    type Rules = c4::Params;

    fn signal_names(_: &Self::Rules) -> Vec<String> {
        [
            "lines_total",
            "lines_too_long_word",
            "lines_no_terminal_punct",
            "lines_too_few_words",
            "lines_javascript",
            "lines_policy",
            "lines_kept",
            "lorem_ipsum_lines",
            "curly_bracket_lines",
            "num_sentences",
        ]
        .map(String::from)
        .to_vec()
    }

    fn evaluate<'a>(doc: &Doc<'a>, rules: &Self::Rules, all_signals: bool, out: &mut Vec<f64>) -> (Decision, Option<Cow<'a, str>>) {
        let o = if all_signals { c4::evaluate(doc, rules) } else { c4::evaluate_to_drop(doc, rules) };
        let s = &o.signals;
        out.extend(
            [
                s.lines_total,
                s.lines_too_long_word,
                s.lines_no_terminal_punct,
                s.lines_too_few_words,
                s.lines_javascript,
                s.lines_policy,
                s.lines_kept,
                s.lorem_ipsum_lines,
                s.curly_bracket_lines,
            ]
            .map(count),
        );
        // Deciding only, counting stops at the minimum: a count that reached it is a
        // lower bound, left null.
        let capped = !all_signals && rules.min_num_sentences > 0 && s.num_sentences as i64 >= rules.min_num_sentences;
        out.push(if capped { f64::NAN } else { count(s.num_sentences) });
        // datatrove rewrites the text only of documents it keeps.
        let text = o.decision.is_keep().then_some(o.text);
        (o.decision, text)
    }
}

/// The FineWeb quality rules.
pub struct FinewebQuality;

impl TextFilter for FinewebQuality {
    const NAME: &'static str = "fineweb_quality";
    const VERSION: &'static str = "1";
    const SUMMARY: &'static str = "FineWeb rules (line punctuation, short lines, duplicated characters, list-like text), datatrove 0.10.1 semantics";
    type Rules = fineweb_quality::Params;

    fn signal_names(_: &Self::Rules) -> Vec<String> {
        ["n_lines", "line_punct_ratio", "short_line_ratio", "char_dup_ratio", "list_ratio"].map(String::from).to_vec()
    }

    fn evaluate<'a>(doc: &Doc<'a>, rules: &Self::Rules, _: bool, out: &mut Vec<f64>) -> (Decision, Option<Cow<'a, str>>) {
        let (s, d) = fineweb_quality::evaluate(doc, rules);
        out.extend([count(s.n_lines), s.line_punct_ratio, s.short_line_ratio, s.char_dup_ratio, s.list_ratio]);
        (d, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow_array::StringArray;
    use arrow_select::filter::filter_record_batch;
    use curate_core::record::TEXT;

    const PROSE: &str = "The committee met on Tuesday to discuss the new budget for the public library. \
Members agreed that the reading rooms need better lighting and more comfortable chairs.\n\
They also noted that the children's section is used by many families every weekend. \
A local teacher said that the library is one of the few quiet places left in the town.\n\
The mayor promised to review the plan before the end of the month. \
Most residents who attended the meeting were happy with the proposal and thanked the staff for their work.";

    fn quality<F: TextFilter>(annotate_only: bool) -> Quality<F>
    where
        F::Rules: Default,
    {
        let params = QualityParams { rules: F::Rules::default(), annotate_only, column: TEXT.into() };
        Quality::new(params).unwrap()
    }

    type Step = Box<dyn Fn(RecordBatch, SplitCache) -> Result<(OpOutput, SplitCache), OpError>>;

    fn chain(annotate_only: bool) -> Vec<Step> {
        let rep = quality::<GopherRepetition>(annotate_only);
        let qual = quality::<GopherQuality>(annotate_only);
        let c4 = quality::<C4Quality>(annotate_only);
        let fw = quality::<FinewebQuality>(annotate_only);
        vec![
            Box::new(move |b, c| rep.process_sharing(b, c)),
            Box::new(move |b, c| qual.process_sharing(b, c)),
            Box::new(move |b, c| c4.process_sharing(b, c)),
            Box::new(move |b, c| fw.process_sharing(b, c)),
        ]
    }

    /// Runs the steps as the executor does (dropped rows removed before the next step),
    /// handing each step the previous step's splits or none; returns every step's output
    /// batch and drop reasons, and how many texts each step found a split for.
    fn run(steps: &[Step], texts: &[Option<&str>], share: bool) -> (Vec<(RecordBatch, Vec<Option<String>>)>, Vec<usize>) {
        let schema = Arc::new(Schema::new(vec![Field::new(TEXT, DataType::Utf8, true)]));
        let mut batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(texts.to_vec()))]).unwrap();
        let (mut outputs, mut found) = (Vec::new(), Vec::new());
        let mut cache = SplitCache::default();
        for step in steps {
            let prev = if share { cache } else { SplitCache::default() };
            let column = string_column(&batch, TEXT).unwrap();
            found.push((0..batch.num_rows()).filter(|&r| prev.lookup(column.value(r)).is_some()).count());
            let (out, next) = step(batch, prev).unwrap();
            cache = next;
            let verdicts = out.verdicts.unwrap();
            let reasons: Vec<Option<String>> = (0..verdicts.len()).map(|r| verdicts.reason(r).map(|s| s.to_string())).collect();
            let keep: arrow_array::BooleanArray = reasons.iter().map(|r| Some(r.is_none())).collect();
            batch = filter_record_batch(&out.batch, &keep).unwrap();
            outputs.push((out.batch, reasons));
        }
        (outputs, found)
    }

    #[test]
    fn filtering_leaves_only_signals_the_decision_does_not_need_null() {
        let column = |b: &RecordBatch, name: &str| -> Option<f64> {
            let a = b.column_by_name(name).unwrap().as_any().downcast_ref::<arrow_array::Float64Array>().unwrap().clone();
            a.is_valid(0).then(|| a.value(0))
        };
        let texts = [Some(PROSE)];
        let (all, _) = run(&chain(true), &texts, true);
        let (deciding, _) = run(&chain(false), &texts, true);
        // The same verdicts, and the prose is kept by every step.
        for (a, d) in all.iter().zip(&deciding) {
            assert_eq!(a.1, d.1);
            assert_eq!(d.1, [None]);
        }
        // Prose repeats no word often enough for a top 2-gram to matter: the bound
        // decides and the column stays null; the duplicate n-gram rules are computed.
        assert!(column(&all[0].0, "gopher_repetition_top_2_gram_char_frac").is_some());
        assert_eq!(column(&deciding[0].0, "gopher_repetition_top_2_gram_char_frac"), None);
        assert_eq!(column(&deciding[0].0, "gopher_repetition_dup_5_gram_char_frac"), column(&all[0].0, "gopher_repetition_dup_5_gram_char_frac"));
        // C4 stops counting sentences at its minimum (5); every other count is exact.
        assert!(column(&all[2].0, "c4_quality_num_sentences").is_some_and(|n| n > 5.0));
        assert_eq!(column(&deciding[2].0, "c4_quality_num_sentences"), None);
        assert_eq!(column(&deciding[2].0, "c4_quality_lines_kept"), column(&all[2].0, "c4_quality_lines_kept"));
    }

    #[test]
    fn sharing_splits_between_steps_changes_no_output() {
        // C4 removes the last two lines; the text it leaves is no other row's.
        let nav = format!("{PROSE} Everyone went home late.\nRead more\nShare this");
        let repeated = vec!["Buy cheap watches online today at the best price."; 10].join("\n");
        let texts = [
            Some(PROSE),
            Some("Hello world."),
            Some(nav.as_str()),
            Some(repeated.as_str()),
            None,
            Some(""),
            // The same text twice: one split serves both.
            Some(PROSE),
            Some("Ünïcödé wörds, ½ and emoji 🙂 don't split like ASCII ones... e.g. U.S. data."),
        ];
        for annotate_only in [false, true] {
            let steps = chain(annotate_only);
            let (alone, none_found) = run(&steps, &texts, false);
            let (shared, found) = run(&steps, &texts, true);
            assert_eq!(none_found, [0, 0, 0, 0]);
            for (a, s) in alone.iter().zip(&shared) {
                assert_eq!(a.1, s.1);
                assert_eq!(a.0, s.0);
            }
            // gopher_quality reuses gopher_repetition's split of every text that reached
            // it; c4 tokenises nothing and passes them on; fineweb reuses them where c4
            // left the text alone: all but `nav`, whose navigation lines it removed.
            let reached: Vec<usize> = shared.iter().map(|(b, _)| b.num_rows()).collect();
            assert!(reached[3] >= 3, "{reached:?}");
            assert_eq!(found, [0, reached[1], reached[2], reached[3] - 1]);
        }
    }
}
