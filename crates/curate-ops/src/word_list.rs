//! `word_list_filter`: counts whole-word occurrences of user-supplied words and phrases
//! (toxicity lists, banned terms) with one Aho-Corasick automaton per language, and drops or
//! annotates records by count or by ratio of matches to words.
//!
//! Matching works on a prepared copy of the text: every run of whitespace becomes one space
//! (so a phrase matches across line breaks and double spaces) and, when case-insensitive, every
//! character is lower-cased. "Whole word" means the match is not preceded or followed by a
//! letter, digit, underscore or combining mark; an edge of an entry that is not itself a word
//! character (`c++`), or that belongs to a script written without spaces (Chinese, Japanese,
//! Thai, ...), needs no boundary there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use arrow_array::builder::{Float64Builder, UInt32Builder};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use curate_core::operator::{BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator, Verdicts};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use unicode_normalization::char::is_combining_mark;

use crate::util::{string_column, with_columns};

/// Column with the number of matches.
pub const COUNT_COLUMN: &str = "word_list_filter_count";
/// Column with matches divided by words.
pub const RATIO_COLUMN: &str = "word_list_filter_ratio";

/// A list of words and phrases, inline, from a file, or both.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WordList {
    /// Words and phrases.
    #[serde(default)]
    pub words: Vec<String>,
    /// File with one word or phrase per line; blank lines and lines starting with `#` are skipped.
    #[serde(default)]
    pub path: Option<String>,
}

/// Parameters of `word_list_filter`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WordListParams {
    /// Words and phrases matched in every record.
    #[serde(default)]
    pub words: Vec<String>,
    /// File with one word or phrase per line, matched in every record; blank lines and lines
    /// starting with `#` are skipped. Relative paths are relative to the working directory.
    #[serde(default)]
    pub path: Option<String>,
    /// Further lists by language code (`{fr: {path: lists/fr.txt}}`), matched in addition in
    /// records whose `language_column` holds that code (or one starting with it, `fr-CA`).
    #[serde(default)]
    pub languages: BTreeMap<String, WordList>,
    /// Column holding each record's language code; needed by `languages`.
    #[serde(default)]
    pub language_column: Option<String>,
    /// Ignore letter case (Unicode lower-casing of both the lists and the text).
    #[serde(default = "default_true")]
    pub case_insensitive: bool,
    /// Drop records with at least this many matches.
    #[serde(default)]
    pub max_count: Option<u32>,
    /// Drop records whose matches divided by words reach this ratio.
    #[serde(default)]
    pub max_ratio: Option<f64>,
    /// Compute the count and ratio columns but drop nothing.
    #[serde(default)]
    pub annotate_only: bool,
    /// Column holding the text.
    #[serde(default = "crate::util::text_column")]
    pub column: String,
}

fn default_true() -> bool {
    true
}

/// Counts list entries in the text and drops by count or ratio.
pub struct WordListFilter {
    params: WordListParams,
    /// Entries matched in every record; `None` when that list is empty.
    common: Option<Matcher>,
    /// Per language: the common entries plus the language's own.
    by_language: BTreeMap<String, Matcher>,
    /// Digest of every loaded entry, so list files edited in place invalidate cached outputs.
    entries_key: String,
}

impl BuiltinOp for WordListFilter {
    const NAME: &'static str = "word_list_filter";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Map;
    const SUMMARY: &'static str =
        "Count whole-word matches of word/phrase lists (per language) and drop by max_count or max_ratio";
    type Params = WordListParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        if !params.languages.is_empty() && params.language_column.is_none() {
            return Err("`languages` needs `language_column`, the column holding each record's language".into());
        }
        if !params.annotate_only && params.max_count.is_none() && params.max_ratio.is_none() {
            return Err("set max_count, max_ratio or both, or annotate_only: true".into());
        }
        if params.max_count == Some(0) {
            return Err("max_count must be at least 1".into());
        }
        if let Some(r) = params.max_ratio {
            if !(r > 0.0 && r <= 1.0) {
                return Err(format!("max_ratio must be in (0, 1], not {r}"));
            }
        }
        let ci = params.case_insensitive;
        let common_entries = load(&params.words, params.path.as_deref(), ci)?;
        let mut key = curate_core::key::KeyHasher::new("word_list_filter.entries");
        common_entries.iter().for_each(|e| _ = key.str("common", e));
        let mut by_language = BTreeMap::new();
        for (lang, list) in &params.languages {
            let mut entries = load(&list.words, list.path.as_deref(), ci)?;
            entries.iter().for_each(|e| _ = key.str(lang, e));
            if entries.is_empty() {
                return Err(format!("the word list of language `{lang}` is empty"));
            }
            entries.extend(common_entries.iter().cloned());
            by_language.insert(lang.clone(), Matcher::new(entries)?);
        }
        if common_entries.is_empty() && by_language.is_empty() {
            return Err("no words given: set `words`, `path` or `languages`".into());
        }
        let common = if common_entries.is_empty() { None } else { Some(Matcher::new(common_entries)?) };
        Ok(WordListFilter { params, common, by_language, entries_key: key.finish() })
    }
}

/// The prepared entries of an inline list and a list file.
fn load(words: &[String], path: Option<&str>, case_insensitive: bool) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    let mut add = |w: &str| {
        let mut prepared = String::new();
        prepare(w, case_insensitive, &mut prepared);
        if !prepared.is_empty() {
            out.insert(prepared);
        }
    };
    words.iter().for_each(|w| add(w));
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read word list file `{path}`: {e}"))?;
        text.lines().filter(|l| !l.trim_start().starts_with('#')).for_each(add);
    }
    Ok(out)
}

/// Writes into `out` the form matching works on: whitespace runs as one space, trimmed, and
/// lower-cased when `case_insensitive`.
fn prepare(text: &str, case_insensitive: bool, out: &mut String) {
    out.clear();
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        if case_insensitive {
            // Per character, so that the text and the lists lower-case alike whatever their
            // context (str::to_lowercase treats a final sigma specially).
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || is_combining_mark(c)
}

/// Whether `c` belongs to a script written without spaces between words, where a boundary
/// cannot be asked for.
fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF        // Thai, Lao
        | 0x1000..=0x109F      // Myanmar
        | 0x1780..=0x17FF      // Khmer
        | 0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF      // CJK extension A
        | 0x4E00..=0x9FFF      // CJK unified ideographs
        | 0xF900..=0xFAFF      // CJK compatibility ideographs
        | 0x20000..=0x3FFFF) // CJK extensions B and later
}

/// Whether an entry edge character asks for a word boundary beside it.
fn needs_boundary(c: Option<char>) -> bool {
    c.is_some_and(|c| is_word_char(c) && !is_unspaced(c))
}

struct Entry {
    boundary_before: bool,
    boundary_after: bool,
}

struct Matcher {
    automaton: AhoCorasick,
    entries: Vec<Entry>,
}

impl Matcher {
    fn new(entries: BTreeSet<String>) -> Result<Self, String> {
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&entries)
            .map_err(|e| format!("cannot build the word-list automaton: {e}"))?;
        let entries = entries
            .iter()
            .map(|e| Entry {
                boundary_before: needs_boundary(e.chars().next()),
                boundary_after: needs_boundary(e.chars().next_back()),
            })
            .collect();
        Ok(Matcher { automaton, entries })
    }

    /// Number of non-overlapping whole-word matches in prepared text, leftmost first and the
    /// longest at each position; `spans` is scratch space.
    fn count(&self, text: &str, spans: &mut Vec<(usize, usize)>) -> u32 {
        spans.clear();
        for m in self.automaton.find_overlapping_iter(text) {
            let entry = &self.entries[m.pattern().as_usize()];
            let before_ok = !entry.boundary_before || !text[..m.start()].chars().next_back().is_some_and(is_word_char);
            let after_ok = !entry.boundary_after || !text[m.end()..].chars().next().is_some_and(is_word_char);
            if before_ok && after_ok {
                spans.push((m.start(), m.end()));
            }
        }
        spans.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut count = 0;
        let mut taken_to = 0;
        for &(start, end) in spans.iter() {
            if start >= taken_to {
                count += 1;
                taken_to = end;
            }
        }
        count
    }
}

/// Words in prepared text: runs of word characters, each character of a script written
/// without spaces counting as one word.
fn count_words(text: &str) -> usize {
    let mut words = 0;
    let mut in_word = false;
    for c in text.chars() {
        if is_unspaced(c) {
            words += 1;
            in_word = false;
        } else if is_word_char(c) {
            words += usize::from(!in_word);
            in_word = true;
        } else {
            in_word = false;
        }
    }
    words
}

impl WordListFilter {
    fn matcher(&self, language: Option<&str>) -> Option<&Matcher> {
        let own = language.and_then(|lang| {
            self.by_language.get(lang).or_else(|| {
                let primary = lang.split(['-', '_']).next()?;
                self.by_language.get(primary)
            })
        });
        own.or(self.common.as_ref())
    }
}

impl Operator for WordListFilter {
    fn content_key(&self) -> Option<String> {
        Some(self.entries_key.clone())
    }

    fn columns(&self) -> Columns {
        let mut reads = vec![self.params.column.clone()];
        reads.extend(self.params.language_column.clone());
        Columns { reads, writes: vec![(COUNT_COLUMN.into(), DataType::UInt32), (RATIO_COLUMN.into(), DataType::Float64)] }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let text = string_column(&batch, &self.params.column)?;
        let language = match &self.params.language_column {
            Some(col) => Some(string_column(&batch, col)?),
            None => None,
        };
        let rows = batch.num_rows();
        let mut counts = UInt32Builder::with_capacity(rows);
        let mut ratios = Float64Builder::with_capacity(rows);
        let mut verdicts = Verdicts::keep_all(rows);
        let (mut prepared, mut spans) = (String::new(), Vec::new());
        for row in 0..rows {
            let lang = language.and_then(|l| l.is_valid(row).then(|| l.value(row)));
            let (count, ratio) = match self.matcher(lang) {
                Some(m) if text.is_valid(row) => {
                    prepare(text.value(row), self.params.case_insensitive, &mut prepared);
                    let count = m.count(&prepared, &mut spans);
                    let words = count_words(&prepared);
                    (count, if words == 0 { 0.0 } else { f64::from(count) / words as f64 })
                }
                _ => (0, 0.0),
            };
            counts.append_value(count);
            ratios.append_value(ratio);
            if self.params.annotate_only {
                continue;
            }
            if self.params.max_count.is_some_and(|m| count >= m) {
                verdicts.drop_row(row, "word_list_filter:max_count");
            } else if self.params.max_ratio.is_some_and(|m| count > 0 && ratio >= m) {
                verdicts.drop_row(row, "word_list_filter:max_ratio");
            }
        }
        let batch = with_columns(
            &batch,
            vec![(COUNT_COLUMN, Arc::new(counts.finish())), (RATIO_COLUMN, Arc::new(ratios.finish()))],
        )?;
        Ok(OpOutput { batch, verdicts: Some(verdicts) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{StringArray, UInt32Array};
    use arrow_schema::{Field, Schema};
    use proptest::prelude::*;
    use serde_json::json;

    fn op(params: serde_json::Value) -> WordListFilter {
        WordListFilter::new(serde_json::from_value(params).unwrap()).unwrap()
    }

    fn count(op: &WordListFilter, text: &str) -> u32 {
        let mut prepared = String::new();
        prepare(text, op.params.case_insensitive, &mut prepared);
        op.common.as_ref().map_or(0, |m| m.count(&prepared, &mut Vec::new()))
    }

    #[test]
    fn whole_words_only() {
        let f = op(json!({"words": ["ass", "bad word", "c++", "猫"], "annotate_only": true}));
        assert_eq!(count(&f, "a class of assets, ass."), 1);
        assert_eq!(count(&f, "Ass! ASS? _ass ass_ass"), 2);
        assert_eq!(count(&f, "a Bad\n  Word here, badword, bad words"), 1);
        assert_eq!(count(&f, "c++ and c++11 but not xc++"), 2, "`c++` needs a boundary before it, none after");
        assert_eq!(count(&f, "我的猫很可爱猫"), 2, "no boundaries in unspaced scripts");
        assert_eq!(count(&f, "a\u{301}ss ass\u{301}"), 0, "combining marks belong to the word");
    }

    #[test]
    fn case_and_unicode() {
        let f = op(json!({"words": ["ÉCOLE", "straße"], "annotate_only": true}));
        assert_eq!(count(&f, "l'école, STRASSE, Straße, écoles"), 2);
        let cs = op(json!({"words": ["Bad"], "case_insensitive": false, "annotate_only": true}));
        assert_eq!(count(&cs, "Bad bad BAD"), 1);
    }

    #[test]
    fn overlapping_entries_count_once_longest_first() {
        let f = op(json!({"words": ["hot dog", "dog", "hot"], "annotate_only": true}));
        assert_eq!(count(&f, "hot dog dogs hot dogs"), 2, "`hot dog`, then `hot`; `dogs` is not `dog`");
    }

    fn batch(texts: &[Option<&str>], langs: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true), Field::new("lang", DataType::Utf8, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(texts.to_vec())), Arc::new(StringArray::from(langs.to_vec()))]).unwrap()
    }

    #[test]
    fn drops_by_count_or_ratio_with_columns() {
        let f = op(json!({"words": ["spam"], "max_count": 3, "max_ratio": 0.25}));
        let b = batch(
            &[Some("spam spam spam and eggs"), Some("spam and eggs"), Some("some spam with many other words here"), None],
            &[None, None, None, None],
        );
        let out = f.process(b).unwrap();
        let v = out.verdicts.unwrap();
        let reasons: Vec<Option<&str>> = (0..4).map(|i| v.reason(i).map(|r| &**r)).collect();
        assert_eq!(reasons, vec![Some("word_list_filter:max_count"), Some("word_list_filter:max_ratio"), None, None]);
        let counts = out.batch.column_by_name(COUNT_COLUMN).unwrap().as_any().downcast_ref::<UInt32Array>().unwrap();
        assert_eq!(counts.values().to_vec(), vec![3, 1, 1, 0]);
        let ratios = out.batch.column_by_name(RATIO_COLUMN).unwrap().as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
        assert_eq!(ratios.values().to_vec(), vec![0.6, 1.0 / 3.0, 1.0 / 7.0, 0.0]);
    }

    #[test]
    fn lists_per_language() {
        let f = op(json!({
            "words": ["xxx"],
            "languages": {"fr": {"words": ["merde"]}, "de": {"words": ["mist"]}},
            "language_column": "lang",
            "annotate_only": true
        }));
        let b = batch(
            &[Some("merde mist xxx"), Some("merde mist xxx"), Some("merde mist xxx"), Some("merde mist xxx")],
            &[Some("fr"), Some("de-AT"), Some("en"), None],
        );
        let out = f.process(b).unwrap();
        let counts = out.batch.column_by_name(COUNT_COLUMN).unwrap().as_any().downcast_ref::<UInt32Array>().unwrap();
        assert_eq!(counts.values().to_vec(), vec![2, 2, 1, 1]);
    }

    #[test]
    fn list_file_and_errors() {
        let dir = std::env::temp_dir().join(format!("curate-wordlist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("list.txt");
        std::fs::write(&path, "# comment\n\nfoo bar\n  baz  \n").unwrap();
        let f = op(json!({"path": path.to_str().unwrap(), "max_count": 1}));
        assert_eq!(count(&f, "Foo   Bar and BAZ, foo"), 2);
        std::fs::remove_dir_all(&dir).unwrap();

        let err = |p: serde_json::Value| WordListFilter::new(serde_json::from_value(p).unwrap()).err().unwrap();
        assert_eq!(
            err(json!({"path": "/nonexistent/list.txt", "max_count": 1})),
            "cannot read word list file `/nonexistent/list.txt`: No such file or directory (os error 2)"
        );
        assert_eq!(err(json!({"words": ["a"]})), "set max_count, max_ratio or both, or annotate_only: true");
        assert_eq!(err(json!({"words": [" "], "max_count": 1})), "no words given: set `words`, `path` or `languages`");
        assert_eq!(
            err(json!({"languages": {"fr": {"words": ["x"]}}, "max_count": 1})),
            "`languages` needs `language_column`, the column holding each record's language"
        );
        assert_eq!(err(json!({"words": ["a"], "max_ratio": 1.5})), "max_ratio must be in (0, 1], not 1.5");
    }

    proptest! {
        /// Counting agrees with a naive reference: split into words and count entries, for
        /// single-word entries in text of ASCII words and punctuation.
        #[test]
        fn agrees_with_naive_word_split(words in proptest::collection::vec("(ab|ba|a|b|abb)[.,! ]{1,2}", 0..20)) {
            let f = op(json!({"words": ["ab", "b"], "annotate_only": true}));
            let text = words.concat();
            let naive = text.split(|c: char| !c.is_alphanumeric()).filter(|w| *w == "ab" || *w == "b").count() as u32;
            prop_assert_eq!(count(&f, &text), naive);
        }
    }
}
