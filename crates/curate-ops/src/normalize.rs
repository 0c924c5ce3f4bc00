//! `normalize`: repairs mojibake, removes control characters, applies a Unicode
//! normalization form and collapses whitespace while keeping line and paragraph breaks.
//!
//! Mojibake repair is deliberately conservative. A run of characters is replaced only when
//! encoding it back to Windows-1252 (Latin-1 for the bytes Windows-1252 leaves undefined)
//! gives one complete, valid UTF-8 sequence that decodes to a printable character. Some such
//! runs also occur in correct text ("AMANHÃ”" is an upper-case Portuguese word followed by a
//! closing quote, but also the mojibake of "Ô"): a run whose continuation characters are all
//! ones that commonly follow a letter (closing quotes, dashes, ellipsis, no-break space, ...)
//! is repaired only when the same text also holds an unambiguous run such as "Ã©" or "â€™",
//! i.e. when the text is evidently mis-decoded.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use curate_core::operator::{BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator};
use curate_core::record::TEXT;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use unicode_normalization::{is_nfc_quick, is_nfkc_quick, IsNormalized, UnicodeNormalization};

use crate::util::{string_column, with_columns};

/// A Unicode normalization form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// Canonical composition: one encoding for each accented letter, text otherwise unchanged.
    Nfc,
    /// Compatibility composition: also folds ligatures, full-width and styled forms (`ﬁ` → `fi`).
    Nfkc,
    /// Leave the normalization form as it is.
    None,
}

/// Parameters of `normalize`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeParams {
    /// Unicode normalization form: `nfc`, `nfkc` or `none`.
    pub form: Form,
    /// Remove control characters, byte-order marks and zero-width spaces; vertical tab, form
    /// feed and NEL become line breaks, tab, newline and carriage return are kept.
    pub remove_control: bool,
    /// Collapse spaces and tabs into one space, trim lines, turn every line-break convention
    /// into `\n` and keep at most one blank line between paragraphs.
    pub collapse_whitespace: bool,
    /// Repair UTF-8 text that was decoded as Windows-1252 or Latin-1 (`cafÃ©` → `café`).
    pub fix_mojibake: bool,
    /// Column holding the text.
    pub column: String,
}

impl Default for NormalizeParams {
    fn default() -> Self {
        NormalizeParams {
            form: Form::Nfc,
            remove_control: true,
            collapse_whitespace: true,
            fix_mojibake: true,
            column: TEXT.into(),
        }
    }
}

/// Rewrites the text column into a normalized form.
pub struct Normalize {
    params: NormalizeParams,
}

impl BuiltinOp for Normalize {
    const NAME: &'static str = "normalize";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Map;
    const SUMMARY: &'static str =
        "Repair mojibake, remove control characters, apply NFC/NFKC and collapse whitespace keeping paragraph breaks";
    type Params = NormalizeParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        Ok(Normalize { params })
    }
}

impl Operator for Normalize {
    fn columns(&self) -> Columns {
        Columns { reads: vec![self.params.column.clone()], writes: vec![(self.params.column.clone(), DataType::Utf8)] }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let text = string_column(&batch, &self.params.column)?;
        let rows = batch.num_rows();
        // Built only once a row changes, so a batch of clean text is passed through as is.
        let mut rewritten: Option<StringBuilder> = None;
        for row in 0..rows {
            let value = text.is_valid(row).then(|| text.value(row));
            let normalized = value.map(|v| normalize_text(v, &self.params));
            match (normalized, rewritten.as_mut()) {
                (Some(Cow::Owned(new)), None) => {
                    let mut b = StringBuilder::with_capacity(rows, text.value_data().len());
                    for r in 0..row {
                        b.append_option(text.is_valid(r).then(|| text.value(r)));
                    }
                    b.append_value(new);
                    rewritten = Some(b);
                }
                (Some(new), Some(b)) => b.append_value(new),
                (None, Some(b)) => b.append_null(),
                (_, None) => {}
            }
        }
        let batch = match rewritten {
            Some(mut b) => with_columns(&batch, vec![(&self.params.column, Arc::new(b.finish()))])?,
            None => batch,
        };
        Ok(OpOutput { batch, verdicts: None })
    }
}

/// Upper bound on repeated passes; real text settles after one or two.
const MAX_PASSES: usize = 8;

/// Normalizes `text` as `params` say; borrows it when nothing changes.
pub fn normalize_text<'a>(text: &'a str, params: &NormalizeParams) -> Cow<'a, str> {
    let mut current = match normalize_once(text, params) {
        Cow::Borrowed(t) => return Cow::Borrowed(t),
        Cow::Owned(t) => t,
    };
    // One step can expose work for another (removing a control character joins the halves of
    // a mojibake sequence, composition creates a lead character), so changed text is passed
    // again until it is stable: the operator is then idempotent.
    for _ in 1..MAX_PASSES {
        match normalize_once(&current, params) {
            Cow::Borrowed(_) => break,
            Cow::Owned(next) => current = next,
        }
    }
    Cow::Owned(current)
}

fn normalize_once<'a>(text: &'a str, p: &NormalizeParams) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    if p.fix_mojibake {
        out = then(out, fix_mojibake);
    }
    if p.remove_control {
        out = then(out, remove_controls);
    }
    match p.form {
        Form::Nfc => out = then(out, nfc),
        Form::Nfkc => out = then(out, nfkc),
        Form::None => {}
    }
    if p.collapse_whitespace {
        out = then(out, collapse_whitespace);
    }
    out
}

/// Applies `step` to `text`, keeping the borrow when neither changed anything.
fn then<'a>(text: Cow<'a, str>, step: for<'b> fn(&'b str) -> Cow<'b, str>) -> Cow<'a, str> {
    match text {
        Cow::Borrowed(t) => step(t),
        Cow::Owned(t) => match step(&t) {
            Cow::Borrowed(_) => Cow::Owned(t),
            Cow::Owned(new) => Cow::Owned(new),
        },
    }
}

fn nfc(text: &str) -> Cow<'_, str> {
    if is_nfc_quick(text.chars()) == IsNormalized::Yes {
        return Cow::Borrowed(text);
    }
    changed_or_borrowed(text, text.nfc().collect())
}

fn nfkc(text: &str) -> Cow<'_, str> {
    if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        return Cow::Borrowed(text);
    }
    changed_or_borrowed(text, text.nfkc().collect())
}

fn changed_or_borrowed(old: &str, new: String) -> Cow<'_, str> {
    if new == old {
        Cow::Borrowed(old)
    } else {
        Cow::Owned(new)
    }
}

/// Control characters that stand for a line break.
fn is_break_control(c: char) -> bool {
    matches!(c, '\u{b}' | '\u{c}' | '\u{85}')
}

/// Characters removed outright: C0 and C1 controls other than tab, newline, carriage return
/// and the line-break controls, DEL, and the invisible byte-order mark, zero-width space and
/// word joiner.
fn is_removed(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{200b}' | '\u{2060}' | '\u{feff}')
}

fn remove_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_removed(c) || is_break_control(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_break_control(c) {
            out.push('\n');
        } else if !is_removed(c) {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}') || is_break_control(c)
}

/// Whether `text` is already what `collapse_whitespace` would make of it.
fn is_collapsed(text: &str) -> bool {
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return false;
    }
    let (mut prev, mut prev2) = ('x', 'x');
    for c in text.chars() {
        if c.is_whitespace() {
            let canonical = match c {
                ' ' => prev != ' ' && prev != '\n',
                '\n' => prev != ' ' && !(prev == '\n' && prev2 == '\n'),
                _ => false,
            };
            if !canonical {
                return false;
            }
        }
        prev2 = prev;
        prev = c;
    }
    true
}

fn collapse_whitespace(text: &str) -> Cow<'_, str> {
    if is_collapsed(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    let mut breaks = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if is_line_break(c) {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            breaks += if c == '\u{2029}' { 2 } else { 1 };
            // Spaces at the end of a line, or on a blank one, are dropped.
            space = false;
        } else if c.is_whitespace() {
            space = true;
        } else {
            if !out.is_empty() {
                match breaks {
                    0 if space => out.push(' '),
                    0 => {}
                    1 => out.push('\n'),
                    _ => out.push_str("\n\n"),
                }
            }
            breaks = 0;
            space = false;
            out.push(c);
        }
    }
    changed_or_borrowed(text, out)
}

/// The byte a character stands for when UTF-8 was decoded as Windows-1252, with Latin-1's C1
/// controls for the five bytes Windows-1252 leaves undefined (and for Latin-1 decoders).
fn cp1252_byte(c: char) -> Option<u8> {
    let b = match c {
        '\u{80}'..='\u{ff}' => c as u8,
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8A,
        '‹' => 0x8B,
        'Œ' => 0x8C,
        'Ž' => 0x8E,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9A,
        '›' => 0x9B,
        'œ' => 0x9C,
        'ž' => 0x9E,
        'Ÿ' => 0x9F,
        _ => return None,
    };
    Some(b)
}

/// Continuation bytes whose Windows-1252 characters commonly follow a letter in correct text:
/// ellipsis, quotes, dashes, trade mark, single guillemets, no-break space, guillemets, soft
/// hyphen and registered sign.
const AMBIGUOUS: [u8; 14] = [0x85, 0x91, 0x92, 0x93, 0x94, 0x96, 0x97, 0x99, 0x9B, 0xA0, 0xAB, 0xAD, 0xAE, 0xBB];

/// One repairable run of mis-decoded characters.
struct Sequence {
    start: usize,
    end: usize,
    decoded: char,
    ambiguous: bool,
}

/// Whether a repaired character is one that text plausibly holds: not a C1 control, not
/// private-use, not a noncharacter.
fn plausible(c: char) -> bool {
    let u = c as u32;
    !((0x80..=0x9F).contains(&u)
        || (0xE000..=0xF8FF).contains(&u)
        || u >= 0xF0000
        || (0xFDD0..=0xFDEF).contains(&u)
        || (u & 0xFFFE) == 0xFFFE)
}

fn for_each_sequence(text: &str, mut f: impl FnMut(Sequence)) {
    let mut it = text.char_indices();
    while let Some((start, c)) = it.next() {
        let lead = match cp1252_byte(c) {
            Some(b @ 0xC2..=0xF4) => b,
            _ => continue,
        };
        let need = match lead {
            0xC2..=0xDF => 1,
            0xE0..=0xEF => 2,
            _ => 3,
        };
        let mut bytes = [lead, 0, 0, 0];
        let mut ambiguous = true;
        let mut end = start + c.len_utf8();
        let mut look = it.clone();
        let mut complete = true;
        for slot in bytes.iter_mut().skip(1).take(need) {
            match look.next().and_then(|(i, d)| Some((i, d, cp1252_byte(d)?))) {
                Some((i, d, b @ 0x80..=0xBF)) => {
                    *slot = b;
                    ambiguous &= AMBIGUOUS.contains(&b);
                    end = i + d.len_utf8();
                }
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        if !complete {
            continue;
        }
        // from_utf8 also refuses overlong forms, surrogates and code points past U+10FFFF.
        let Some(decoded) = std::str::from_utf8(&bytes[..=need]).ok().and_then(|s| s.chars().next()) else {
            continue;
        };
        if plausible(decoded) {
            f(Sequence { start, end, decoded, ambiguous });
            it = look;
        }
    }
}

fn fix_mojibake(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let mut current = Cow::Borrowed(text);
    // Text mis-decoded twice needs two rounds; each round shortens the text, so this ends.
    while let Some(fixed) = fix_mojibake_round(&current) {
        current = Cow::Owned(fixed);
    }
    current
}

fn fix_mojibake_round(text: &str) -> Option<String> {
    let mut evident = false;
    for_each_sequence(text, |s| evident |= !s.ambiguous);
    if !evident {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for_each_sequence(text, |s| {
        out.push_str(&text[last..s.start]);
        out.push(s.decoded);
        last = s.end;
    });
    out.push_str(&text[last..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;
    use arrow_schema::{Field, Schema};
    use proptest::prelude::*;

    fn norm(text: &str) -> String {
        normalize_text(text, &NormalizeParams::default()).into_owned()
    }

    fn with(f: impl FnOnce(&mut NormalizeParams)) -> NormalizeParams {
        let mut p = NormalizeParams::default();
        f(&mut p);
        p
    }

    #[test]
    fn repairs_common_mojibake() {
        assert_eq!(norm("cafÃ©"), "café");
        assert_eq!(norm("Itâ€™s â€œquotedâ€\u{9d}"), "It’s “quoted”");
        assert_eq!(norm("Itâ\u{80}\u{99}s"), "It’s", "Latin-1 decoding leaves C1 controls");
        assert_eq!(norm("MÃ¼nchen, GrÃ¶ÃŸe, Ã\u{a0} bientÃ´t"), "München, Größe, à bientôt");
        assert_eq!(norm("ðŸ˜€ ok"), "😀 ok");
        assert_eq!(norm("cafÃƒÂ©"), "café", "mis-decoded twice");
        assert_eq!(norm("ÐŸÑ€Ð¸Ð²ÐµÑ‚"), "Привет");
    }

    #[test]
    fn leaves_correct_latin1_text_alone() {
        for t in ["SÃO PAULO", "JOÃO E MARIA", "“AMANHÔ, disse ele", "IRMÃ…", "Straße»", "naïve café", "Ã"] {
            assert_eq!(norm(t), t);
        }
        // Ambiguous runs are repaired once the text shows it is mis-decoded.
        assert_eq!(norm("â€œAMANHÃ”"), "“AMANHÔ");
    }

    #[test]
    fn removes_controls_and_keeps_breaks() {
        assert_eq!(norm("\u{feff}a\u{0}b\u{7}c\u{200b}d\u{7f}"), "abcd");
        assert_eq!(norm("page one\u{c}page two"), "page one\npage two");
        let keep_ws = with(|p| p.collapse_whitespace = false);
        assert_eq!(normalize_text("a\tb\u{1}\r\n", &keep_ws), "a\tb\r\n");
        let keep_ctl = with(|p| p.remove_control = false);
        assert_eq!(normalize_text("a\u{1}b", &keep_ctl), "a\u{1}b");
    }

    #[test]
    fn normalization_forms() {
        assert_eq!(norm("e\u{301}te\u{301}"), "été");
        assert_eq!(norm("ﬁne ①"), "ﬁne ①");
        assert_eq!(normalize_text("ﬁne ①", &with(|p| p.form = Form::Nfkc)), "fine 1");
        assert_eq!(normalize_text("e\u{301}", &with(|p| p.form = Form::None)), "e\u{301}");
    }

    #[test]
    fn collapses_whitespace_keeping_paragraphs() {
        let t = "  Hello \u{a0}  world\t!  \r\n\r\n \r\n\nNext  para\nline two\u{2029}Third  ";
        assert_eq!(norm(t), "Hello world !\n\nNext para\nline two\n\nThird");
        assert_eq!(norm(" \n\t "), "");
    }

    #[test]
    fn options_turn_steps_off() {
        let p = with(|p| p.fix_mojibake = false);
        assert_eq!(normalize_text("cafÃ©  x", &p), "cafÃ© x");
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(normalize_text("Clean text.\n\nTwo paragraphs, é.", &NormalizeParams::default()), Cow::Borrowed(_)));
    }

    #[test]
    fn operator_rewrites_only_changed_rows_and_keeps_nulls() {
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
        let col = StringArray::from(vec![Some("ok"), None, Some("cafÃ©  bar ")]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(col)]).unwrap();
        let op = Normalize::new(NormalizeParams::default()).unwrap();
        let out = op.process(batch).unwrap();
        let text = out.batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let got: Vec<Option<&str>> = text.iter().collect();
        assert_eq!(got, vec![Some("ok"), None, Some("café bar")]);
        assert!(out.verdicts.is_none());
    }

    fn tricky_text() -> impl Strategy<Value = String> {
        let pool = vec![
            "a", "Z", "é", "e", "\u{301}", "\u{303}", "A", " ", "  ", "\t", "\n", "\r", "\r\n", "\u{a0}", "\u{2029}",
            "\u{0}", "\u{85}", "\u{c}", "\u{feff}", "Ã", "Â", "â", "ð", "©", "€", "™", "’", "”", "Ÿ", "˜", "\u{80}",
            "\u{99}", "ß", "ﬁ", "①", "Ð", "¿", "ƒ",
        ];
        proptest::collection::vec(proptest::sample::select(pool), 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn idempotent(t in tricky_text(), nfkc in any::<bool>(), ws in any::<bool>()) {
            let p = with(|p| { p.collapse_whitespace = ws; if nfkc { p.form = Form::Nfkc } });
            let once = normalize_text(&t, &p).into_owned();
            let twice = normalize_text(&once, &p).into_owned();
            prop_assert_eq!(&once, &twice);
        }

        #[test]
        fn ascii_without_controls_only_changes_whitespace(t in "[a-zA-Z .,!\n]{0,40}") {
            let out = norm(&t);
            let strip = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            prop_assert_eq!(strip(&out), strip(&t));
            prop_assert!(!out.contains("  ") && !out.contains("\n\n\n"));
        }
    }
}
