//! `pii_redact`: finds e-mail addresses, IP addresses, phone numbers, payment card numbers,
//! IBANs and US social security numbers, counts them per kind and replaces them with typed
//! placeholders (`<EMAIL>`), or only counts them, or drops the records holding them.
//!
//! One `RegexSet` pass tells which detectors can match at all, so text without candidates
//! costs one scan and no allocation. Candidates are then checked beyond what a pattern can:
//! octet ranges, IPv6 syntax, Luhn and IIN for cards, the mod-97 checksum and country length
//! for IBANs, the invalid area/group/serial rules for SSNs, and national numbering shapes for
//! phones. Decisions on ambiguous text, made before looking at any sample:
//! - a dotted quad directly after a version word (`version 1.2.3.4`, `v1.2.3.4`) is a version,
//!   not an address; otherwise a valid dotted quad is an address;
//! - bare digit strings (a 10-digit number, a 9-digit SSN) count only after a keyword such as
//!   `phone`/`tel` or `SSN` just before them; formatted numbers need no keyword;
//! - dates, times, ISBNs, hex hashes and UUIDs are excluded by shape (separators, group
//!   sizes, leading digits, word boundaries) rather than by lists.

use std::net::Ipv6Addr;
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt32Builder};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use curate_core::operator::{BuiltinOp, Columns, OpError, OpKind, OpOutput, Operator, Verdicts};
use regex::{Regex, RegexSet};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::util::{string_column, with_columns};

/// A kind of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// E-mail address.
    Email,
    /// IPv4 or IPv6 address.
    IpAddress,
    /// Phone number: international (`+CC ...`) or a common national format (US, UK, FR, DE).
    Phone,
    /// Payment card number (13-19 digits, Luhn-checked).
    CreditCard,
    /// International bank account number (mod-97 checked).
    Iban,
    /// US social security number.
    UsSsn,
}

impl Kind {
    /// Every kind, in the order their counts and drop reasons are reported.
    pub const ALL: [Kind; 6] = [Kind::Email, Kind::IpAddress, Kind::Phone, Kind::CreditCard, Kind::Iban, Kind::UsSsn];

    /// Name as written in specs and column names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::IpAddress => "ip_address",
            Kind::Phone => "phone",
            Kind::CreditCard => "credit_card",
            Kind::Iban => "iban",
            Kind::UsSsn => "us_ssn",
        }
    }

    /// Text that replaces a redacted value.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "<EMAIL>",
            Kind::IpAddress => "<IP_ADDRESS>",
            Kind::Phone => "<PHONE>",
            Kind::CreditCard => "<CREDIT_CARD>",
            Kind::Iban => "<IBAN>",
            Kind::UsSsn => "<US_SSN>",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One detected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset past the last byte.
    pub end: usize,
    /// What it is.
    pub kind: Kind,
}

/// Candidate patterns; the checks in code decide.
const EMAIL: &str = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}";
const IPV4: &str = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}";
const IPV6: &str = r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}";
const IBAN: &str = r"[A-Z]{2}[0-9]{2} ?[A-Z0-9]{4} ?[A-Z0-9]{4}";
/// Seven digits or more with separators: the least a phone, card or SSN has.
const NUMERIC: &str = r"[0-9](?:[ ()./\-]{0,3}[0-9]){6}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detector {
    Email,
    Ipv4,
    Ipv6,
    Iban,
    Numeric,
}

/// Finds the chosen kinds of personal data in text.
pub struct PiiDetector {
    wanted: [bool; 6],
    set: RegexSet,
    detectors: Vec<(Detector, Regex)>,
}

impl PiiDetector {
    /// A detector for `kinds`.
    pub fn new(kinds: &[Kind]) -> Self {
        let mut wanted = [false; 6];
        kinds.iter().for_each(|k| wanted[k.index()] = true);
        let mut chosen = Vec::new();
        let mut add = |d, p: &str| {
            // The patterns are constants tested below, so building them cannot fail at run time.
            chosen.push((d, Regex::new(p).unwrap_or_else(|e| panic!("bad built-in pattern {p}: {e}"))))
        };
        if wanted[Kind::Email.index()] {
            add(Detector::Email, EMAIL);
        }
        if wanted[Kind::IpAddress.index()] {
            add(Detector::Ipv4, IPV4);
            add(Detector::Ipv6, IPV6);
        }
        if wanted[Kind::Iban.index()] {
            add(Detector::Iban, IBAN);
        }
        if wanted[Kind::Phone.index()] || wanted[Kind::CreditCard.index()] || wanted[Kind::UsSsn.index()] {
            add(Detector::Numeric, NUMERIC);
        }
        let set = RegexSet::new(chosen.iter().map(|(_, r)| r.as_str()))
            .unwrap_or_else(|e| panic!("bad built-in pattern set: {e}"));
        PiiDetector { wanted, set, detectors: chosen }
    }

    /// Fills `out` with the non-overlapping values found in `text`, in text order.
    pub fn detect(&self, text: &str, out: &mut Vec<Span>) {
        out.clear();
        if self.detectors.is_empty() {
            return;
        }
        // is_match stops early and allocates nothing, so text without candidates costs one scan.
        if !self.set.is_match(text) {
            return;
        }
        let hits = self.set.matches(text);
        for (i, (detector, re)) in self.detectors.iter().enumerate() {
            if !hits.matched(i) {
                continue;
            }
            match detector {
                Detector::Email => scan(re, text, out, false, |s, e| email(text, s, e).then_some((e, Kind::Email))),
                Detector::Ipv4 => scan(re, text, out, false, |s, e| ipv4(text, s, e).then_some((e, Kind::IpAddress))),
                Detector::Ipv6 => scan(re, text, out, false, |s, e| ipv6(text, s, e).map(|e| (e, Kind::IpAddress))),
                Detector::Iban => scan(re, text, out, true, |s, _| iban(text, s).map(|e| (e, Kind::Iban))),
                Detector::Numeric => numeric(text, &self.wanted, out),
            }
        }
        if out.len() > 1 {
            // Where detectors overlap, the earliest value wins, then the longest.
            out.sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
            let mut taken_to = 0;
            out.retain(|s| {
                let keep = s.start >= taken_to;
                if keep {
                    taken_to = s.end;
                }
                keep
            });
        }
    }
}

/// Runs `re` over `text`, checking each candidate with `check`, which returns where an accepted
/// value ends. The search goes on after an accepted value; after a refused candidate it goes
/// on one byte further when `retry_inside` (a value may start inside the refused one), else
/// after it.
fn scan(re: &Regex, text: &str, out: &mut Vec<Span>, retry_inside: bool, check: impl Fn(usize, usize) -> Option<(usize, Kind)>) {
    let mut at = 0;
    while let Some(m) = re.find_at(text, at) {
        match check(m.start(), m.end()) {
            Some((end, kind)) => {
                out.push(Span { start: m.start(), end, kind });
                at = end;
            }
            // The patterns start with an ASCII character, so one byte on is a char boundary.
            None if retry_inside => at = m.start() + 1,
            None => at = m.end(),
        }
        if at >= text.len() {
            break;
        }
    }
}

fn char_before(text: &str, at: usize) -> Option<char> {
    text[..at].chars().next_back()
}

fn char_after(text: &str, at: usize) -> Option<char> {
    text[at..].chars().next()
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Whether `text[at..]` starts with one of `seps` followed by a word character: the value
/// would continue (`1.2.3.4.5`, `name@host.com-x`).
fn continues(text: &str, at: usize, seps: &[char]) -> bool {
    let mut it = text[at..].chars();
    it.next().is_some_and(|c| seps.contains(&c)) && is_word(it.next())
}

/// File extensions that follow `@2x`-style image names, which look like addresses.
const FILE_TLDS: [&str; 10] = ["png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff"];

fn email(text: &str, start: usize, end: usize) -> bool {
    let value = &text[start..end];
    let Some((local, domain)) = value.split_once('@') else { return false };
    let tld = domain.rsplit('.').next().unwrap_or_default();
    !(local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || is_word(char_before(text, start))
        || is_word(char_after(text, end))
        || continues(text, end, &['.', '@'])
        || FILE_TLDS.iter().any(|t| tld.eq_ignore_ascii_case(t)))
}

/// Words after which a dotted quad is a version number.
const VERSION_WORDS: [&str; 8] = ["version", "ver", "v", "release", "build", "firmware", "revision", "rev"];

fn ipv4(text: &str, start: usize, end: usize) -> bool {
    let octets_ok = text[start..end].split('.').all(|o| o.len() == 1 || (!o.starts_with('0') && o.parse::<u16>().is_ok_and(|n| n <= 255)));
    if !octets_ok
        || is_word(char_before(text, start))
        || is_word(char_after(text, end))
        || continues(text, end, &['.'])
        || (char_before(text, start) == Some('.') && char_before(text, start - 1).is_some_and(|c| c.is_ascii_digit()))
    {
        return false;
    }
    let before = text[..start].trim_end_matches([' ', ':', '.', '=']);
    let word_start = before.rfind(|c: char| !c.is_alphanumeric()).map_or(0, |i| i + 1);
    !VERSION_WORDS.iter().any(|v| before[word_start..].eq_ignore_ascii_case(v))
}

fn ipv6(text: &str, start: usize, end: usize) -> Option<usize> {
    let before = char_before(text, start);
    if is_word(before) || matches!(before, Some(':' | '.')) {
        return None;
    }
    let mut candidate = &text[start..end];
    if candidate.ends_with(':') && !candidate.ends_with("::") {
        candidate = &candidate[..candidate.len() - 1];
    }
    let end = start + candidate.len();
    let groups = candidate.split(':').filter(|g| !g.is_empty()).count();
    let enough = if candidate.starts_with("::") { groups >= 1 } else { groups >= 2 };
    let after = char_after(text, end);
    (enough && candidate.parse::<Ipv6Addr>().is_ok() && !is_word(after) && after != Some(':')).then_some(end)
}

/// IBAN length by country (SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24), ("AE", 23), ("AL", 28), ("AT", 20), ("AZ", 28), ("BA", 20), ("BE", 16), ("BG", 22), ("BH", 22), ("BR", 29),
    ("BY", 28), ("CH", 21), ("CR", 22), ("CY", 28), ("CZ", 24), ("DE", 22), ("DK", 18), ("DO", 28), ("EE", 20), ("EG", 29),
    ("ES", 24), ("FI", 18), ("FO", 18), ("FR", 27), ("GB", 22), ("GE", 22), ("GI", 23), ("GL", 18), ("GR", 27), ("GT", 28),
    ("HR", 21), ("HU", 28), ("IE", 22), ("IL", 23), ("IQ", 23), ("IS", 26), ("IT", 27), ("JO", 30), ("KW", 30), ("KZ", 20),
    ("LB", 28), ("LC", 32), ("LI", 21), ("LT", 20), ("LU", 20), ("LV", 21), ("MC", 27), ("MD", 24), ("ME", 22), ("MK", 19),
    ("MR", 27), ("MT", 31), ("MU", 30), ("NL", 18), ("NO", 15), ("PK", 24), ("PL", 28), ("PS", 29), ("PT", 25), ("QA", 29),
    ("RO", 24), ("RS", 22), ("SA", 24), ("SC", 31), ("SE", 24), ("SI", 19), ("SK", 24), ("SM", 27), ("ST", 25), ("SV", 28),
    ("TL", 23), ("TN", 24), ("TR", 26), ("UA", 29), ("VA", 22), ("VG", 24), ("XK", 20), ("LY", 25), ("SD", 18),
];

/// Where the IBAN starting at `start` ends, if one does: the country's length of letters and
/// digits, spaces allowed only between groups of four, and a valid mod-97 checksum.
fn iban(text: &str, start: usize) -> Option<usize> {
    if is_word(char_before(text, start)) {
        return None;
    }
    let b = text.as_bytes();
    let len = IBAN_LENGTHS.iter().find(|(c, _)| c.as_bytes() == &b[start..start + 2])?.1;
    let mut chars = [0u8; 34];
    let (mut n, mut i) = (0, start);
    while n < len {
        match b.get(i) {
            Some(&c) if c.is_ascii_uppercase() || c.is_ascii_digit() => {
                chars[n] = c;
                n += 1;
                i += 1;
            }
            Some(b' ') if n % 4 == 0 && b.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric()) => i += 1,
            _ => return None,
        }
    }
    if is_word(char_after(text, i)) {
        return None;
    }
    // Move the country code and check digits to the end, letters to 10..35, then mod 97.
    let mut rem = 0u32;
    for &c in chars[4..len].iter().chain(&chars[..4]) {
        rem = if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    (rem == 1).then_some(i)
}

/// A run of digit groups joined by separators: the candidates for phones, cards and SSNs.
struct Run<'a> {
    text: &'a str,
    /// Byte spans of the digit groups.
    groups: &'a [(usize, usize)],
    /// Where the run starts, with a leading `+` or `(`.
    lead: usize,
    plus: bool,
    /// Whether the character before `lead` allows a value to start there.
    clean_start: bool,
    /// Whether the character after the last group allows a value to end there.
    clean_end: bool,
}

/// Separator between two digit groups, if `b[at..]` starts with one followed by a digit.
fn separator_len(b: &[u8], at: usize) -> Option<usize> {
    for len in 1..=3 {
        let sep = b.get(at..at + len)?;
        if !sep.iter().all(|c| b" -./()".contains(c)) {
            return None;
        }
        if b.get(at + len).is_some_and(u8::is_ascii_digit) {
            let marks = sep.iter().filter(|c| b"-./".contains(c)).count();
            let opens = sep.iter().filter(|&&c| c == b'(').count();
            let closes = sep.iter().filter(|&&c| c == b')').count();
            let order_ok = match (sep.iter().position(|&c| c == b')'), sep.iter().position(|&c| c == b'(')) {
                (Some(c), Some(o)) => c < o,
                _ => true,
            };
            // An opening parenthesis joins only a closed group, `(0)` or `(800)`: in
            // `123-4567 (10 am)` the run ends before it.
            let closed = opens == 0 || {
                let digits_end = (at + len..b.len()).find(|&k| !b[k].is_ascii_digit()).unwrap_or(b.len());
                b.get(digits_end) == Some(&b')')
            };
            // A spaced dash or slash (`4567 - 10`, `1 / 2`) separates numbers, it does not join them.
            // Likewise a closing one only closes a group that was opened.
            let opened = closes == 0 || {
                let digits_start = (0..at).rev().find(|&k| !b[k].is_ascii_digit()).map_or(0, |k| k + 1);
                digits_start > 0 && b[digits_start - 1] == b'('
            };
            let spaced_mark = marks == 1 && sep.contains(&b' ');
            let ok = opened && !spaced_mark && marks <= 1 && opens <= 1 && closes <= 1 && order_ok && closed && !sep.windows(2).any(|w| w == b"  ");
            return ok.then_some(len);
        }
    }
    None
}

/// Longest window of groups tried as one value; no kind has more groups.
const MAX_WINDOW: usize = 6;

fn numeric(text: &str, wanted: &[bool; 6], out: &mut Vec<Span>) {
    let b = text.as_bytes();
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        groups.clear();
        let mut j = i;
        loop {
            let start = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            groups.push((start, j));
            match separator_len(b, j) {
                Some(len) => j += len,
                None => break,
            }
        }
        let mut lead = i;
        if lead > 0 && b[lead - 1] == b'(' {
            lead -= 1;
        }
        let plus = lead > 0 && b[lead - 1] == b'+';
        if plus {
            lead -= 1;
        }
        let before = char_before(text, lead);
        let run = Run {
            text,
            groups: &groups,
            lead,
            plus,
            clean_start: !(is_word(before) || matches!(before, Some('-' | '.' | '/' | '_' | '+' | '@'))),
            clean_end: !(is_word(char_after(text, j)) || continues(text, j, &['-', '.', '/', ':', '@', ','])),
        };
        run.windows(wanted, out);
        i = j;
    }
}

impl Run<'_> {
    fn gap(&self, k: usize) -> &str {
        &self.text[self.groups[k].1..self.groups[k + 1].0]
    }

    /// Tries windows of groups as values, leftmost first and longest at each start. A window
    /// may start or end inside the run only at a gap holding a space.
    fn windows(&self, wanted: &[bool; 6], out: &mut Vec<Span>) {
        let n = self.groups.len();
        let mut i = 0;
        while i < n {
            let start_ok = if i == 0 { self.clean_start } else { self.gap(i - 1).contains(' ') };
            let mut next = i + 1;
            if start_ok {
                for j in (i..n.min(i + MAX_WINDOW)).rev() {
                    let end_ok = if j == n - 1 { self.clean_end } else { self.gap(j).contains(' ') };
                    if !end_ok {
                        continue;
                    }
                    if let Some(span) = self.classify(i, j, wanted) {
                        out.push(span);
                        next = j + 1;
                        break;
                    }
                }
            }
            i = next;
        }
    }

    /// Whether groups `i..=j` are set apart from the rest of their run: by the run's ends, or
    /// by gaps unlike the ones inside the window. In `4532 0151 1283 0367` no part is apart
    /// from the rest (a longer number of which a phone-shaped part is a coincidence); in
    /// `(555) 123-4567 10.1.2.3` the phone is.
    fn stands_apart(&self, i: usize, j: usize) -> bool {
        let inside: Vec<&str> = (i..j).map(|k| self.gap(k)).collect();
        (i == 0 || !inside.contains(&self.gap(i - 1))) && (j + 1 == self.groups.len() || !inside.contains(&self.gap(j)))
    }

    fn classify(&self, i: usize, j: usize, wanted: &[bool; 6]) -> Option<Span> {
        let groups = &self.groups[i..=j];
        let mut digits = [0u8; 20];
        let mut n = 0;
        for &(s, e) in groups {
            for &d in &self.text.as_bytes()[s..e] {
                *digits.get_mut(n)? = d;
                n += 1;
            }
        }
        let w = Window {
            run: self,
            i,
            j,
            digits: &digits[..n],
            plus: i == 0 && self.plus,
            paren_first: self.text.as_bytes()[..groups[0].0].ends_with(b"(") && (j > i && self.gap(i).starts_with(')')),
        };
        let kind = if wanted[Kind::CreditCard.index()] && w.card() {
            Kind::CreditCard
        } else if wanted[Kind::UsSsn.index()] && w.ssn() {
            Kind::UsSsn
        } else if wanted[Kind::Phone.index()] && self.stands_apart(i, j) && w.phone() {
            Kind::Phone
        } else {
            return None;
        };
        let start = if i == 0 { self.lead } else if w.paren_first { groups[0].0 - 1 } else { groups[0].0 };
        Some(Span { start, end: groups[groups.len() - 1].1, kind })
    }
}

struct Window<'a> {
    run: &'a Run<'a>,
    i: usize,
    j: usize,
    digits: &'a [u8],
    plus: bool,
    paren_first: bool,
}

const PHONE_WORDS: [&str; 14] =
    ["phone", "tel", "mobile", "cell", "call", "fax", "whatsapp", "sms", "contact", "text", "téléphone", "tél", "telefon", "handy"];
const SSN_WORDS: [&str; 3] = ["ssn", "social security", "ss#"];

impl Window<'_> {
    fn lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.run.groups[self.i..=self.j].iter().map(|(s, e)| e - s)
    }

    fn group_count(&self) -> usize {
        self.j - self.i + 1
    }

    /// Gaps between the window's groups.
    fn gaps(&self) -> impl Iterator<Item = &str> + '_ {
        (self.i..self.j).map(|k| self.run.gap(k))
    }

    fn same_gaps(&self, allowed: &[&str]) -> bool {
        let mut gaps = self.gaps();
        match gaps.next() {
            None => true,
            Some(first) => allowed.contains(&first) && gaps.all(|g| g == first),
        }
    }

    fn layout(&self, expected: &[usize]) -> bool {
        self.lens().eq(expected.iter().copied())
    }

    /// Whether a keyword from `words` stands shortly before the window.
    fn after_keyword(&self, words: &[&str]) -> bool {
        let start = if self.i == 0 { self.run.lead } else { self.run.groups[self.i].0 };
        let mut from = start.saturating_sub(32);
        while !self.run.text.is_char_boundary(from) {
            from += 1;
        }
        let before = self.run.text[from..start].to_lowercase();
        words.iter().any(|w| {
            before.match_indices(w).any(|(at, _)| !before[..at].chars().next_back().is_some_and(char::is_alphabetic))
        })
    }

    fn card(&self) -> bool {
        let n = self.digits.len();
        if !(13..=19).contains(&n) || self.plus || self.paren_first || !(b'2'..=b'6').contains(&self.digits[0]) {
            return false;
        }
        let layout_ok = self.group_count() == 1
            || (self.same_gaps(&[" ", "-"])
                && [&[4, 4, 4, 4][..], &[4, 4, 4, 4, 3], &[4, 6, 5], &[4, 6, 4]].iter().any(|l| self.layout(l)));
        layout_ok && luhn(self.digits)
    }

    fn ssn(&self) -> bool {
        if self.plus || self.paren_first || self.digits.len() != 9 {
            return false;
        }
        let shaped = (self.layout(&[3, 2, 4]) && (self.same_gaps(&["-"]) || (self.same_gaps(&[" "]) && self.after_keyword(&SSN_WORDS))))
            || (self.group_count() == 1 && self.after_keyword(&SSN_WORDS));
        let d = |r: std::ops::Range<usize>| std::str::from_utf8(&self.digits[r]).ok().and_then(|s| s.parse::<u32>().ok());
        let (Some(area), Some(group), Some(serial)) = (d(0..3), d(3..5), d(5..9)) else { return false };
        // The area, group and serial rules of the SSA; 078-05-1120 and 219-09-9999 are numbers
        // published in advertising, never issued to a person.
        let valid = area != 0
            && area != 666
            && area < 900
            && group != 0
            && serial != 0
            && !(area == 78 && group == 5 && serial == 1120)
            && !(area == 219 && group == 9 && serial == 9999);
        shaped && valid
    }

    fn phone(&self) -> bool {
        let n = self.digits.len();
        if n < 7 || !self.parens_balanced() {
            return false;
        }
        if self.plus {
            let text = self.run.text;
            let trunk = self.run.groups[self.i..=self.j]
                .iter()
                .filter(|&&(s, e)| e - s == 1 && text[..s].ends_with('(') && text[e..].starts_with(')'))
                .count();
            return (8..=15).contains(&(n - trunk)) && self.group_count() <= 6;
        }
        self.nanp() || self.leading_zero() || self.bare_after_keyword()
    }

    /// Whether the window's parentheses pair up, one level deep; an opening one just before
    /// the first group belongs to the window.
    fn parens_balanced(&self) -> bool {
        let opened = if self.i == 0 { self.run.text[..self.run.groups[0].0].ends_with('(') } else { self.paren_first };
        let mut depth = i32::from(opened);
        for g in self.gaps() {
            for c in g.chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if !(0..=1).contains(&depth) {
                    return false;
                }
            }
        }
        depth == 0
    }

    /// North American numbering: `(NXX) XXX-XXXX`, `NXX-XXX-XXXX`, optionally after `1`.
    fn nanp(&self) -> bool {
        let lens: Vec<usize> = self.lens().collect();
        let gaps: Vec<&str> = self.gaps().collect();
        let (lens, gaps, digits) = if lens.len() == 4 && lens[0] == 1 && self.digits[0] == b'1' {
            if !["-", " ", ".", " (", "("].contains(&gaps[0]) {
                return false;
            }
            (&lens[1..], &gaps[1..], &self.digits[1..])
        } else {
            (&lens[..], &gaps[..], self.digits)
        };
        // Only the area code's first digit is checked: fictional numbers such as (555) 123-4567
        // break the exchange rule and are written like real ones.
        if lens != [3, 3, 4] || !(b'2'..=b'9').contains(&digits[0]) {
            return false;
        }
        let area_paren = self.run.text[..self.run.groups[self.j - 2].0].ends_with('(');
        let seps = ["-", ".", " "];
        if area_paren {
            [")", ") ", ")-"].contains(&gaps[0]) && seps.contains(&gaps[1])
        } else {
            seps.contains(&gaps[0]) && gaps[0] == gaps[1]
        }
    }

    /// National numbers with a trunk `0` (UK, FR, DE and most of Europe): 9 to 12 digits in two
    /// or more groups, the first of 2 to 5 digits, the others joined alike.
    fn leading_zero(&self) -> bool {
        let n = self.digits.len();
        if self.digits[0] != b'0' || self.digits[1] == b'0' || !(9..=12).contains(&n) || self.group_count() < 2 {
            return false;
        }
        let mut lens = self.lens();
        let first = lens.next().unwrap_or(0);
        if !(2..=5).contains(&first) || lens.any(|l| l < 2) {
            return false;
        }
        let mut gaps = self.gaps();
        let first_gap = gaps.next().unwrap_or_default();
        let first_ok = if self.paren_first { [")", ") "].contains(&first_gap) } else { [" ", "-", ".", "/"].contains(&first_gap) };
        let rest: Vec<&str> = gaps.collect();
        first_ok && rest.iter().all(|g| [" ", "-", "."].contains(g) && *g == rest[0])
    }

    /// Unformatted numbers and US local numbers, accepted only after a phone keyword.
    fn bare_after_keyword(&self) -> bool {
        let n = self.digits.len();
        let bare = self.group_count() == 1 && (7..=12).contains(&n);
        let local = self.layout(&[3, 4]) && self.same_gaps(&["-", " ", "."]) && (b'2'..=b'9').contains(&self.digits[0]);
        (bare || local) && self.after_keyword(&PHONE_WORDS)
    }
}

/// The Luhn checksum used by payment cards.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    matches!(sum % 10, 0)
}

/// What `pii_redact` does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Replace each value with its kind's placeholder (`<EMAIL>`).
    Redact,
    /// Only count; the text is unchanged.
    Annotate,
    /// Drop records holding any chosen kind; their text is redacted too, so rejects hold none.
    Drop,
}

/// Parameters of `pii_redact`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PiiParams {
    /// `redact` (placeholders), `annotate` (counts only) or `drop` (drop records with any).
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Kinds to look for: `email`, `ip_address`, `phone`, `credit_card`, `iban`, `us_ssn`.
    #[serde(default = "default_kinds")]
    pub kinds: Vec<Kind>,
    /// Column holding the text.
    #[serde(default = "crate::util::text_column")]
    pub column: String,
}

fn default_mode() -> Mode {
    Mode::Redact
}

fn default_kinds() -> Vec<Kind> {
    Kind::ALL.to_vec()
}

/// Finds, counts and redacts personal data.
pub struct PiiRedact {
    params: PiiParams,
    /// The chosen kinds, deduplicated, in `Kind::ALL` order.
    kinds: Vec<Kind>,
    columns: Vec<String>,
    detector: PiiDetector,
}

impl BuiltinOp for PiiRedact {
    const NAME: &'static str = "pii_redact";
    const VERSION: &'static str = "1";
    const KIND: OpKind = OpKind::Map;
    const SUMMARY: &'static str =
        "Find e-mails, IPs, phones, payment cards, IBANs and US SSNs: replace with <KIND> placeholders, count per kind, or drop";
    type Params = PiiParams;

    fn new(params: Self::Params) -> Result<Self, String> {
        let kinds: Vec<Kind> = Kind::ALL.into_iter().filter(|k| params.kinds.contains(k)).collect();
        if kinds.is_empty() {
            return Err("`kinds` is empty: name at least one kind".into());
        }
        let columns = kinds.iter().map(|k| format!("pii_{}", k.name())).collect();
        let detector = PiiDetector::new(&kinds);
        Ok(PiiRedact { params, kinds, columns, detector })
    }
}

/// `text` with each span replaced by its placeholder.
pub fn redact(text: &str, spans: &[Span]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for s in spans {
        out.push_str(&text[last..s.start]);
        out.push_str(s.kind.placeholder());
        last = s.end;
    }
    out.push_str(&text[last..]);
    out
}

impl Operator for PiiRedact {
    fn columns(&self) -> Columns {
        let mut writes: Vec<(String, DataType)> = self.columns.iter().map(|c| (c.clone(), DataType::UInt32)).collect();
        if self.params.mode != Mode::Annotate {
            writes.push((self.params.column.clone(), DataType::Utf8));
        }
        Columns { reads: vec![self.params.column.clone()], writes }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let text = string_column(&batch, &self.params.column)?;
        let rows = batch.num_rows();
        let mut counts: Vec<UInt32Builder> = self.kinds.iter().map(|_| UInt32Builder::with_capacity(rows)).collect();
        let mut rewritten: Option<StringBuilder> = None;
        let mut verdicts = Verdicts::keep_all(rows);
        let mut spans = Vec::new();
        for row in 0..rows {
            let value = text.is_valid(row).then(|| text.value(row));
            spans.clear();
            if let Some(v) = value {
                self.detector.detect(v, &mut spans);
            }
            let mut per_kind = [0u32; 6];
            spans.iter().for_each(|s| per_kind[s.kind.index()] += 1);
            for (b, k) in counts.iter_mut().zip(&self.kinds) {
                b.append_value(per_kind[k.index()]);
            }
            if self.params.mode == Mode::Drop {
                if let Some(k) = self.kinds.iter().find(|k| per_kind[k.index()] > 0) {
                    verdicts.drop_row(row, &format!("pii_redact:{}", k.name()));
                }
            }
            if self.params.mode == Mode::Annotate {
                continue;
            }
            match (value, rewritten.as_mut()) {
                (Some(v), None) if !spans.is_empty() => {
                    let mut b = StringBuilder::with_capacity(rows, text.value_data().len());
                    for r in 0..row {
                        b.append_option(text.is_valid(r).then(|| text.value(r)));
                    }
                    b.append_value(redact(v, &spans));
                    rewritten = Some(b);
                }
                (Some(v), Some(b)) if !spans.is_empty() => b.append_value(redact(v, &spans)),
                (value, Some(b)) => b.append_option(value),
                (_, None) => {}
            }
        }
        let mut columns: Vec<(&str, ArrayRef)> =
            self.columns.iter().zip(counts).map(|(c, mut b)| (c.as_str(), Arc::new(b.finish()) as ArrayRef)).collect();
        if let Some(mut b) = rewritten {
            columns.push((&self.params.column, Arc::new(b.finish())));
        }
        let batch = with_columns(&batch, columns)?;
        let verdicts = (self.params.mode == Mode::Drop).then_some(verdicts);
        Ok(OpOutput { batch, verdicts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{StringArray, UInt32Array};
    use arrow_schema::{Field, Schema};
    use proptest::prelude::*;

    fn found(text: &str) -> Vec<(Kind, &str)> {
        let mut spans = Vec::new();
        PiiDetector::new(&Kind::ALL).detect(text, &mut spans);
        spans.iter().map(|s| (s.kind, &text[s.start..s.end])).collect()
    }

    #[test]
    fn checksums() {
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(luhn(b"378282246310005"));
        assert_eq!(iban("GB82 WEST 1234 5698 7654 32", 0), Some(27));
        assert_eq!(iban("GB82WEST12345698765432", 0), Some(22));
        assert_eq!(iban("GB82 WEST 1234 5698 7654 33", 0), None, "checksum");
        assert_eq!(iban("GB82 WEST 1234 5698 7654 3", 0), None, "too short for GB");
        assert_eq!(iban("GB82 WE ST12 3456 9876 5432", 0), None, "space inside a group");
    }

    #[test]
    fn finds_each_kind() {
        assert_eq!(
            found("Mail a.b@example.org, IP 10.0.0.1 and fe80::1, card 4111 1111 1111 1111."),
            vec![(Kind::Email, "a.b@example.org"), (Kind::IpAddress, "10.0.0.1"), (Kind::IpAddress, "fe80::1"), (Kind::CreditCard, "4111 1111 1111 1111")]
        );
        assert_eq!(
            found("IBAN GB82 WEST 1234 5698 7654 32, SSN 123-45-6789, tel (555) 123-4567 or +44 20 7946 0958"),
            vec![(Kind::Iban, "GB82 WEST 1234 5698 7654 32"), (Kind::UsSsn, "123-45-6789"), (Kind::Phone, "(555) 123-4567"), (Kind::Phone, "+44 20 7946 0958")]
        );
        assert_eq!(found("FR 01 42 68 53 00, DE 030/12345678, UK 020 7946 0958"), vec![
            (Kind::Phone, "01 42 68 53 00"),
            (Kind::Phone, "030/12345678"),
            (Kind::Phone, "020 7946 0958")
        ]);
    }

    #[test]
    fn hard_negatives() {
        for t in [
            "version 1.2.3.4",
            "v1.2.3.4",
            "999.1.1.1 and 1.2.3.04",
            "on 2024-01-15 and 12/31/2023 at 12:30:45",
            "ISBN 978-3-16-148410-0",
            "sha 3f786850e387550fdab836ed7e6dc881de23001b, id 550e8400-e29b-41d4-a716-446655440000",
            "card 4111 1111 1111 1112",
            "order 1234 5678 9012 3456",
            "SSN 666-12-3456, 000-12-3456, 912-12-3456, 123-00-4567, 123-45-0000",
            "std::vector and crate::Item",
            "icon@2x.png",
            "bare 5551234567 without a keyword",
        ] {
            assert_eq!(found(t), vec![], "{t}");
        }
        assert_eq!(found("call 5551234567"), vec![(Kind::Phone, "5551234567")]);
    }

    fn run(params: serde_json::Value, texts: &[Option<&str>]) -> OpOutput {
        let op = PiiRedact::new(serde_json::from_value(params).unwrap()).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(texts.to_vec()))]).unwrap();
        op.process(batch).unwrap()
    }

    fn texts(out: &OpOutput) -> Vec<Option<String>> {
        let col = out.batch.column_by_name("text").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
        col.iter().map(|v| v.map(String::from)).collect()
    }

    fn counts(out: &OpOutput, column: &str) -> Vec<u32> {
        out.batch.column_by_name(column).unwrap().as_any().downcast_ref::<UInt32Array>().unwrap().values().to_vec()
    }

    const ROWS: [Option<&str>; 3] = [Some("mail x@y.com or x@y.com, ip 8.8.8.8"), None, Some("nothing here")];

    #[test]
    fn redact_mode() {
        let out = run(serde_json::json!({}), &ROWS);
        assert_eq!(
            texts(&out),
            vec![Some("mail <EMAIL> or <EMAIL>, ip <IP_ADDRESS>".into()), None, Some("nothing here".into())]
        );
        assert_eq!(counts(&out, "pii_email"), vec![2, 0, 0]);
        assert_eq!(counts(&out, "pii_ip_address"), vec![1, 0, 0]);
        assert_eq!(counts(&out, "pii_us_ssn"), vec![0, 0, 0]);
        assert!(out.verdicts.is_none());
    }

    #[test]
    fn annotate_mode_and_kind_choice() {
        let out = run(serde_json::json!({"mode": "annotate", "kinds": ["ip_address"]}), &ROWS);
        assert_eq!(texts(&out)[0].as_deref(), ROWS[0]);
        assert_eq!(counts(&out, "pii_ip_address"), vec![1, 0, 0]);
        assert!(out.batch.column_by_name("pii_email").is_none());
    }

    #[test]
    fn drop_mode_redacts_and_names_first_kind() {
        let out = run(serde_json::json!({"mode": "drop", "kinds": ["ip_address", "email"]}), &ROWS);
        let v = out.verdicts.as_ref().unwrap();
        let reasons: Vec<Option<&str>> = (0..3).map(|i| v.reason(i).map(|r| &**r)).collect();
        assert_eq!(reasons, vec![Some("pii_redact:email"), None, None]);
        assert_eq!(texts(&out)[0].as_deref(), Some("mail <EMAIL> or <EMAIL>, ip <IP_ADDRESS>"));
    }

    #[test]
    fn empty_kinds_rejected() {
        let err = PiiRedact::new(serde_json::from_value(serde_json::json!({"kinds": []})).unwrap()).err();
        assert_eq!(err.as_deref(), Some("`kinds` is empty: name at least one kind"));
    }

    /// Values of every kind and plain words, joined by separators prose puts between them. A
    /// bare space is left out: between two numbers it makes them one ambiguous number
    /// (`+44 20 7946 0958 10`), found differently once its neighbour is a placeholder.
    fn text_with_pii() -> impl Strategy<Value = String> {
        let pieces = vec![
            "jane.doe@example.com", "10.1.2.3", "2001:db8::7", "4111 1111 1111 1111", "5555-5555-5555-4444",
            "GB82 WEST 1234 5698 7654 32", "123-45-6789", "(555) 123-4567", "+44 20 7946 0958", "06 12 34 56 78",
            "hello", "world", "1", "42", "2024", "phone", "SSN", "x",
        ];
        let seps = vec![", ", "\n", "; ", " and ", ": ", " (see) "];
        proptest::collection::vec((proptest::sample::select(pieces), proptest::sample::select(seps)), 0..20)
            .prop_map(|v| v.into_iter().flat_map(|(p, s)| [p, s]).collect())
    }

    proptest! {
        #[test]
        fn redacted_text_has_nothing_left_to_find(t in text_with_pii()) {
            let d = PiiDetector::new(&Kind::ALL);
            let mut spans = Vec::new();
            d.detect(&t, &mut spans);
            let redacted = redact(&t, &spans);
            d.detect(&redacted, &mut spans);
            let left: Vec<&str> = spans.iter().map(|s| &redacted[s.start..s.end]).collect();
            prop_assert!(left.is_empty(), "{:?} still holds {:?}", redacted, left);
        }

        #[test]
        fn spans_are_ordered_disjoint_char_boundaries(t in "\\PC{0,60}") {
            let mut spans = Vec::new();
            PiiDetector::new(&Kind::ALL).detect(&t, &mut spans);
            let mut last = 0;
            for s in &spans {
                prop_assert!(s.start >= last && s.start < s.end && t.is_char_boundary(s.start) && t.is_char_boundary(s.end));
                last = s.end;
            }
        }
    }
}
