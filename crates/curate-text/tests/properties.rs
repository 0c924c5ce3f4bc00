//! Seeded random inputs (hand-rolled generator, so no extra dependency): no panics on
//! arbitrary Unicode, ratio signals inside [0, 1], tokens that tile the text, and the
//! short-circuit path agreeing with the full one.

use curate_text::tokenizer::{tokenize, Scratch};
use curate_text::{c4, fineweb_quality, gopher_quality, gopher_repetition, Doc};

/// xorshift64*: deterministic, good enough to scatter test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Fragments that exercise the tokenizer's special cases, affixes, URLs and the
/// filters' line rules.
const FRAGMENTS: &[&str] = &[
    "the",
    "and",
    "of",
    "don't",
    "e.g.",
    "U.S.",
    "Mr.",
    ":)",
    "):",
    "(:",
    "...",
    "…",
    "—",
    "-",
    "- ",
    "• ",
    "#",
    "#tag",
    "$5",
    "10km",
    "5m.",
    "3+4",
    "a-b",
    "well-known",
    "x,y",
    "end.Start",
    "https://example.com/a?b=1",
    "user@host.org",
    "[1]",
    "[edit]",
    "[citation needed]",
    "{",
    "}",
    "lorem ipsum",
    "JavaScript",
    "cookie policy",
    "terms of use",
    "'s",
    "’s",
    "\"",
    "'",
    "(",
    ")",
    "?",
    "!",
    ".",
    ",",
    ";",
    ":",
    "°C.",
    "AB.",
    "IS_ALPHA",
    "İ",
    "ß",
    "日本語",
    "한국어",
    "ﷺ",
    "\u{301}",
    "\u{200b}",
    "🙂",
    "𝪈",
    "\u{10ffff}",
];

const SPACES: &[&str] = &[
    " ", " ", " ", "  ", "\n", "\n\n", "\r\n", "\t", "\u{a0}", "\u{2028}", "\u{85}", "\u{b}",
    "\u{3000}",
];

fn random_text(rng: &mut Rng) -> String {
    let len = rng.below(200);
    let mut s = String::new();
    for _ in 0..len {
        match rng.below(10) {
            0..=4 => s.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]),
            5 | 6 => s.push_str(SPACES[rng.below(SPACES.len())]),
            7 => {
                // any scalar value, astral planes included
                let c = char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}');
                s.push(c);
            }
            8 => s.push(char::from(b'a' + rng.below(26) as u8)),
            _ => s.push(char::from(b' ' + rng.below(95) as u8)),
        }
    }
    s
}

fn unit(name: &str, v: f64, text: &str) {
    assert!((0.0..=1.0).contains(&v), "{name} = {v} for {text:?}");
}

#[test]
fn filters_never_panic_and_ratios_stay_in_unit_interval() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let c4_np = c4::Params {
        filter_no_terminal_punct: false,
        ..Default::default()
    };
    let c4_sent = c4::Params {
        split_paragraph: false,
        min_num_sentences: 1,
        ..Default::default()
    };
    for _ in 0..3000 {
        let text = random_text(&mut rng);
        let doc = Doc::new(&text);

        let (q, _) = gopher_quality::evaluate(&doc, &Default::default());
        for (n, v) in [
            ("hash_ratio", q.hash_ratio),
            ("bullet_lines_ratio", q.bullet_lines_ratio),
            ("end_ellipsis_lines_ratio", q.end_ellipsis_lines_ratio),
            ("alpha_words_ratio", q.alpha_words_ratio),
        ] {
            unit(n, v, &text);
        }
        assert!(q.n_non_symbol_words <= q.n_words);
        assert!(q.avg_word_length.is_nan() == (q.n_non_symbol_words == 0));

        let (r, d) = gopher_repetition::evaluate(&doc, &Default::default());
        assert_eq!(
            gopher_repetition::check(&doc, &Default::default()),
            d,
            "{text:?}"
        );
        for (n, v) in [
            ("dup_para_frac", r.dup_para_frac),
            ("dup_para_char_frac", r.dup_para_char_frac),
            ("dup_line_frac", r.dup_line_frac),
            ("dup_line_char_frac", r.dup_line_char_frac),
        ] {
            unit(n, v, &text);
        }
        r.dup_n_gram_char_frac
            .iter()
            .for_each(|&v| unit("dup_n_gram_char_frac", v, &text));

        let (f, _) = fineweb_quality::evaluate(&doc, &Default::default());
        for (n, v) in [
            ("line_punct_ratio", f.line_punct_ratio),
            ("short_line_ratio", f.short_line_ratio),
            ("char_dup_ratio", f.char_dup_ratio),
        ] {
            unit(n, v, &text);
        }

        for p in [&c4::Params::default(), &c4_np, &c4_sent] {
            let out = c4::evaluate(&doc, p);
            let deciding = c4::evaluate_to_drop(&doc, p);
            assert_eq!((&deciding.decision, &deciding.text), (&out.decision, &out.text), "{text:?}");
            assert!(deciding.signals.num_sentences <= out.signals.num_sentences);
            let sig = &out.signals;
            let removed = sig.lines_too_long_word
                + sig.lines_no_terminal_punct
                + sig.lines_too_few_words
                + sig.lines_javascript
                + sig.lines_policy;
            assert_eq!(sig.lines_total, removed + sig.lines_kept, "{text:?}");
            assert_eq!(out.text.trim(), &*out.text, "{text:?}");
        }
    }
}

#[test]
fn tokens_tile_the_text() {
    let mut rng = Rng(0xC0FF_EE00_1234_5678);
    let mut scratch = Scratch::default();
    for _ in 0..3000 {
        let text = random_text(&mut rng);
        let mut pos = 0;
        tokenize(&text, &mut scratch, |a, b, ws| {
            assert!(a < b && b <= text.len(), "{a}..{b} in {text:?}");
            // Only the single space spaCy folds into the previous token may be skipped.
            assert!(
                a == pos || (a == pos + 1 && &text[pos..a] == " "),
                "gap before {a} in {text:?}"
            );
            let tok = &text[a..b];
            // Rust's whitespace is a subset of Python's `isspace`, which splits words.
            if !ws {
                assert!(!tok.chars().any(char::is_whitespace), "{tok:?}");
            }
            pos = b;
        });
        assert!(
            pos == text.len() || (pos + 1 == text.len() && text.ends_with(' ')),
            "{text:?}"
        );
    }
}

/// datatrove's `find_top_duplicate` transcribed literally: `" ".join` n-grams counted in
/// a map, `Counter.most_common(1)` (ties to the first seen).
fn reference_top(words: &[&str], n: usize) -> Option<usize> {
    if words.len() < n {
        return None;
    }
    let mut counts: std::collections::HashMap<String, (usize, usize)> = Default::default();
    for (i, w) in words.windows(n).enumerate() {
        counts.entry(w.join(" ")).or_insert((0, i)).0 += 1;
    }
    let (gram, (count, _)) = counts
        .into_iter()
        .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))?;
    Some(gram.chars().count() * count)
}

/// datatrove's `find_all_duplicate` transcribed literally over `"".join` n-grams.
fn reference_dup(words: &[&str], n: usize) -> usize {
    let mut unique = std::collections::HashSet::new();
    let (mut repeated, mut idx) = (0, 0);
    while idx + n <= words.len() {
        let gram = words[idx..idx + n].concat();
        if unique.contains(&gram) {
            repeated += gram.chars().count();
            idx += n;
        } else {
            unique.insert(gram);
            idx += 1;
        }
    }
    repeated
}

#[test]
fn n_gram_signals_match_a_literal_transcription() {
    // A small vocabulary whose words concatenate ambiguously ("ab c" = "a bc"), so that
    // repeats, ties and join-only collisions are frequent.
    const VOCAB: &[&str] = &[
        "a", "b", "ab", "c", "bc", "abc", "the", "them", "é", "éé", "x", ".", "'s",
    ];
    let mut rng = Rng(0xD0_0D_FE_ED_00_00_00_07);
    let params = gopher_repetition::Params {
        top_n_grams: (1..=6)
            .map(|n| gopher_repetition::NGramThreshold { n, max_frac: 1.0 })
            .collect(),
        dup_n_grams: (1..=11)
            .map(|n| gopher_repetition::NGramThreshold { n, max_frac: 1.0 })
            .collect(),
        ..Default::default()
    };
    for round in 0..2000 {
        let len = rng.below(if round % 10 == 0 { 400 } else { 40 });
        let vocab = 1 + rng.below(VOCAB.len());
        let text: Vec<&str> = (0..len).map(|_| VOCAB[rng.below(vocab)]).collect();
        let text = text.join(" ");
        let doc = Doc::new(&text);
        let words = doc.words();
        let chars = text.chars().count() as f64;
        let frac = |c: usize| if chars == 0.0 { 0.0 } else { c as f64 / chars };
        let sig = gopher_repetition::signals(&doc, &params);
        let top: Vec<Option<f64>> = params
            .top_n_grams
            .iter()
            .map(|t| reference_top(words, t.n).map(frac))
            .collect();
        let dup: Vec<f64> = params
            .dup_n_grams
            .iter()
            .map(|t| frac(reference_dup(words, t.n)))
            .collect();
        assert_eq!(sig.top_n_gram_char_frac, top, "{text:?}");
        assert_eq!(sig.dup_n_gram_char_frac, dup, "{text:?}");
    }
}

#[test]
fn deciding_early_agrees_with_every_signal_at_the_thresholds() {
    // `check` skips top n-gram rules whose bound from shorter n-grams cannot exceed the
    // threshold; thresholds set exactly at, just below and well above each measured
    // value, on repetitive texts, must give the decision the full signals give.
    const VOCAB: &[&str] = &["a", "b", "ab", "the", "cat", "sat", "é", ".", "longerword"];
    let mut rng = Rng(0xB0_0D_5EED_0000_0003);
    for round in 0..3000 {
        let len = 1 + rng.below(if round % 10 == 0 { 600 } else { 60 });
        let vocab = 1 + rng.below(VOCAB.len());
        let words: Vec<&str> = (0..len).map(|_| VOCAB[rng.below(vocab)]).collect();
        let text = words.join(" ");
        let doc = Doc::new(&text);
        let none = gopher_repetition::Params {
            dup_line_frac: None,
            dup_para_frac: None,
            dup_line_char_frac: None,
            dup_para_char_frac: None,
            top_n_grams: (1..=6).map(|n| gopher_repetition::NGramThreshold { n, max_frac: 1.0 }).collect(),
            dup_n_grams: vec![],
        };
        let all = gopher_repetition::signals(&doc, &none);
        let mut params = none.clone();
        for (t, v) in params.top_n_grams.iter_mut().zip(&all.top_n_gram_char_frac) {
            let v = v.unwrap_or(0.0);
            t.max_frac = match rng.below(4) {
                0 => v,
                1 => v - 1e-9,
                2 => v * 1.5,
                _ => v * (rng.below(100) as f64 / 100.0),
            };
        }
        let full = gopher_repetition::decide(&gopher_repetition::signals(&doc, &params), &params);
        assert_eq!(gopher_repetition::check(&doc, &params), full, "{text:?} {params:?}");
        assert_eq!(gopher_repetition::evaluate_to_drop(&doc, &params).1, full, "{text:?}");
    }
}
