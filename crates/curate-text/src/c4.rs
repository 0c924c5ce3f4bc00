//! datatrove 0.10.1 `C4QualityFilter` (Raffel et al. 2020), including its rewrite of the
//! text down to the kept lines.

use std::borrow::Cow;
use std::sync::OnceLock;

use memchr::memmem::Finder;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::chars::{char_len, is, is_space, py_strip, PY_DIGIT};
use crate::decision::{drop, Decision};
use crate::doc::Doc;
use crate::tokenizer::{count_sentences, split_sentences};

const FILTER: &str = "c4_quality";

/// Lines containing any of these (lowercased) are removed (datatrove's `POLICY_SUBSTRINGS`).
const POLICY_SUBSTRINGS: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// Rules of the C4 quality filter; `-1` disables the integer ones, as in datatrove.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Split the text on line breaks (`true`, as C4) or into spaCy sentences (`false`).
    pub split_paragraph: bool,
    /// Remove Wikipedia-style citations (`[1]`, `[edit]`, `[citation needed]`).
    pub remove_citations: bool,
    /// Remove lines that do not end in `.`, `?`, `!`, `"` or `'`, or that end in `...`.
    pub filter_no_terminal_punct: bool,
    /// Drop documents with fewer sentences than this in the kept lines; `-1` disables.
    pub min_num_sentences: i64,
    /// Remove lines with fewer whitespace-separated words than this.
    pub min_words_per_line: i64,
    /// Remove lines with a word longer than this many code points; `-1` disables.
    pub max_word_length: i64,
    /// Drop documents with a kept line containing "lorem ipsum".
    pub filter_lorem_ipsum: bool,
    /// Remove lines mentioning "javascript".
    pub filter_javascript: bool,
    /// Drop documents with a kept line containing `{`.
    pub filter_curly_bracket: bool,
    /// Remove lines mentioning cookie / terms-of-use / privacy policies.
    pub filter_policy: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            split_paragraph: true,
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: 5,
            min_words_per_line: 3,
            max_word_length: 1000,
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

/// Per-line counters (datatrove's `line-*` stats) and the document-level findings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// Lines (or sentences, without `split_paragraph`) examined.
    pub lines_total: usize,
    /// Lines removed for a word longer than `max_word_length`.
    pub lines_too_long_word: usize,
    /// Lines removed for lacking terminal punctuation.
    pub lines_no_terminal_punct: usize,
    /// Lines removed for having fewer than `min_words_per_line` words.
    pub lines_too_few_words: usize,
    /// Lines removed for mentioning javascript.
    pub lines_javascript: usize,
    /// Lines removed for policy / cookie boilerplate.
    pub lines_policy: usize,
    /// Lines kept in the rewritten text.
    pub lines_kept: usize,
    /// Lines that passed the line rules and contain "lorem ipsum".
    pub lorem_ipsum_lines: usize,
    /// Lines that passed the line rules and contain `{`.
    pub curly_bracket_lines: usize,
    /// Sentences in the kept lines (spaCy sentencizer per line).
    pub num_sentences: usize,
}

/// Result of the C4 filter on one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Output<'a> {
    /// Counters over every line (computed past the point where datatrove would stop).
    pub signals: Signals,
    /// Keep, or the first failing document rule.
    pub decision: Decision,
    /// The kept lines joined by `"\n"` (`" "` without `split_paragraph`) and stripped:
    /// what datatrove writes back into `doc.text` when the document is kept.
    pub text: Cow<'a, str>,
}

/// What a kept line triggers at document level, in datatrove's check order.
#[derive(Clone, Copy, PartialEq)]
enum DocRule {
    LoremIpsum,
    CurlyBracket,
}

/// Runs the filter: line removals, document rules and the rewritten text.
pub fn evaluate<'a>(doc: &Doc<'a>, params: &Params) -> Output<'a> {
    run(doc, params, false)
}

/// [`evaluate`] computing only what the decision and the rewritten text need: sentences
/// are counted until there are `min_num_sentences`, so `signals.num_sentences` is then
/// that minimum (a lower bound); every other output is the same.
pub fn evaluate_to_drop<'a>(doc: &Doc<'a>, params: &Params) -> Output<'a> {
    run(doc, params, true)
}

fn run<'a>(doc: &Doc<'a>, params: &Params, deciding: bool) -> Output<'a> {
    let text = doc.text();
    let sentences;
    let pieces: &[&'a str] = if params.split_paragraph {
        doc.lines()
    } else {
        sentences = doc.with_scratch(|s| split_sentences(text, s));
        &sentences
    };
    let mut sig = Signals::default();
    let mut first_doc_rule: Option<DocRule> = None;
    let mut kept: Vec<Cow<'a, str>> = Vec::new();
    let needles = needles();
    let mut lower: Vec<u8> = Vec::new();
    for &raw in pieces {
        sig.lines_total += 1;
        let stripped = py_strip(raw);
        let (n_words, longest) = word_stats(stripped);
        if params.max_word_length != -1 && longest as i64 > params.max_word_length {
            sig.lines_too_long_word += 1;
            continue;
        }
        let line: Cow<'a, str> = if params.remove_citations {
            remove_citations(stripped)
        } else {
            Cow::Borrowed(stripped)
        };
        if params.filter_no_terminal_punct
            && (!line.ends_with(['.', '?', '!', '"', '\'']) || line.ends_with("..."))
        {
            sig.lines_no_terminal_punct += 1;
            continue;
        }
        if (n_words as i64) < params.min_words_per_line {
            sig.lines_too_few_words += 1;
            continue;
        }
        // `line.lower()`, once per line for all the substring rules.
        lower.clear();
        lower.extend(line.bytes().map(|b| b.to_ascii_lowercase()));
        if params.filter_lorem_ipsum && needles.lorem_ipsum.find(&lower).is_some() {
            sig.lorem_ipsum_lines += 1;
            first_doc_rule.get_or_insert(DocRule::LoremIpsum);
        }
        if params.filter_javascript && needles.javascript.find(&lower).is_some() {
            sig.lines_javascript += 1;
            continue;
        }
        if params.filter_curly_bracket && line.contains('{') {
            sig.curly_bracket_lines += 1;
            first_doc_rule.get_or_insert(DocRule::CurlyBracket);
        }
        if params.filter_policy
            && needles.policy.iter().any(|p| p.find(&lower).is_some())
        {
            sig.lines_policy += 1;
            continue;
        }
        // Sentences past the minimum change no decision (spaCy's sentencizer per line is
        // the costliest step of this filter).
        let enough = deciding && sig.num_sentences as i64 >= params.min_num_sentences;
        if params.min_num_sentences != -1 && !enough {
            sig.num_sentences += if params.split_paragraph {
                doc.with_scratch(|s| count_sentences(&line, s))
            } else {
                1
            };
        }
        sig.lines_kept += 1;
        kept.push(line);
    }
    let decision = match first_doc_rule {
        Some(DocRule::LoremIpsum) => drop(FILTER, "lorem_ipsum"),
        Some(DocRule::CurlyBracket) => drop(FILTER, "curly_bracket"),
        None if (sig.num_sentences as i64) < params.min_num_sentences => {
            drop(FILTER, "too_few_sentences")
        }
        None => Decision::Keep,
    };
    let sep = if params.split_paragraph { "\n" } else { " " };
    let joined = join(&kept, sep);
    let text = match joined {
        Cow::Borrowed(s) => Cow::Borrowed(py_strip(s)),
        Cow::Owned(s) => {
            let t = py_strip(&s);
            if t.len() == s.len() {
                Cow::Owned(s)
            } else {
                Cow::Owned(t.to_owned())
            }
        }
    };
    Output {
        signals: sig,
        decision,
        text,
    }
}

/// `"sep".join(parts)`, borrowing when there is a single borrowed part.
fn join<'a>(parts: &[Cow<'a, str>], sep: &str) -> Cow<'a, str> {
    match parts {
        [] => Cow::Borrowed(""),
        [Cow::Borrowed(one)] => Cow::Borrowed(one),
        _ => {
            let len = parts.iter().map(|p| p.len() + sep.len()).sum();
            let mut s = String::with_capacity(len);
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    s.push_str(sep);
                }
                s.push_str(p);
            }
            Cow::Owned(s)
        }
    }
}

/// `len(line.split())` and the longest word's code-point length.
fn word_stats(line: &str) -> (usize, usize) {
    line.split(is_space)
        .filter(|w| !w.is_empty())
        .fold((0, 0), |(n, m), w| (n + 1, m.max(char_len(w))))
}

/// `CITATION_REGEX.sub("", line)` with `\[\d*]|\[edit]|\[citation needed]`.
fn remove_citations(line: &str) -> Cow<'_, str> {
    if !line.contains('[') {
        return Cow::Borrowed(line);
    }
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while let Some(off) = line[i..].find('[') {
        let at = i + off;
        let rest = &line[at + 1..];
        let digits: usize = rest
            .chars()
            .take_while(|&c| is(c, PY_DIGIT))
            .map(char::len_utf8)
            .sum();
        let len = if rest[digits..].starts_with(']') {
            Some(1 + digits + 1)
        } else if rest.starts_with("edit]") {
            Some(6)
        } else if rest.starts_with("citation needed]") {
            Some(17)
        } else {
            None
        };
        match len {
            Some(len) => {
                out.push_str(&line[copied..at]);
                copied = at + len;
                i = copied;
            }
            None => i = at + 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(line);
    }
    out.push_str(&line[copied..]);
    Cow::Owned(out)
}

/// The substrings the C4 rules look for in `line.lower()`, as prebuilt vectorised
/// searchers.
struct Needles {
    lorem_ipsum: Finder<'static>,
    javascript: Finder<'static>,
    policy: Vec<Finder<'static>>,
}

/// `line.lower()` is computed by ASCII case folding: Python's `lower()` can only produce
/// ASCII letters from ASCII letters and the Kelvin sign (U+212A), which is not handled.
fn needles() -> &'static Needles {
    static N: OnceLock<Needles> = OnceLock::new();
    N.get_or_init(|| Needles {
        lorem_ipsum: Finder::new("lorem ipsum"),
        javascript: Finder::new("javascript"),
        policy: POLICY_SUBSTRINGS.iter().map(Finder::new).collect(),
    })
}
