//! `corpus`: seeded JSONL corpus with planted duplicates.
//!
//! Words are drawn from a Zipf(1.0) distribution over `/usr/share/dict/words` (lowercase ASCII
//! entries, rank order shuffled by the seed), or over a generated syllable vocabulary when that
//! file is absent. Each original document is, independently:
//! * with probability 0.25 followed by 1-3 near-copies, each with a word-edit rate drawn from
//!   [`EDIT_RATES`] (per word: 60% substitution, 20% deletion, 20% insertion);
//! * with probability 0.05 followed by one exact copy.
//!
//! Copies are emitted a random 1..2000 lines later so that duplicates are not adjacent; every
//! line carries `group` (the original's id) and copies carry `edit_rate` (0 for exact copies).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use crate::arg;

/// Word-edit rates of near-copies; spread so that true Jaccard covers 0.2..1.0.
pub const EDIT_RATES: [f64; 9] = [0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3];
const DICT: &str = "/usr/share/dict/words";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn vocabulary(rng: &mut Rng) -> (Vec<String>, &'static str) {
    let mut words: Vec<String> = std::fs::read_to_string(DICT)
        .map(|s| {
            s.lines()
                .filter(|w| w.len() > 1 && w.bytes().all(|b| b.is_ascii_lowercase()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let source = if words.len() >= 1000 {
        DICT
    } else {
        const SYL: [&str; 20] = [
            "ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "an", "el", "or", "ve", "di", "su",
            "ga", "fe", "ho", "ji", "qu", "zo",
        ];
        words = (0..60_000u64)
            .map(|i| {
                let n = 1 + (i % 4);
                (0..=n)
                    .map(|k| SYL[((i / 4 + k * 7919) % 20) as usize])
                    .collect::<String>()
                    + &(i / 1000).to_string()
            })
            .collect();
        "generated syllables"
    };
    words.sort();
    words.dedup();
    for i in (1..words.len()).rev() {
        words.swap(i, rng.below(i as u64 + 1) as usize);
    }
    (words, source)
}

struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|r| {
                acc += 1.0 / r as f64;
                acc
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= acc);
        Zipf { cdf }
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        self.cdf
            .partition_point(|&c| c < rng.unit())
            .min(self.cdf.len() - 1)
    }
}

fn edit(words: &[usize], rate: f64, zipf: &Zipf, rng: &mut Rng) -> Vec<usize> {
    let mut out = Vec::with_capacity(words.len() + 8);
    for &w in words {
        if rng.unit() >= rate {
            out.push(w);
            continue;
        }
        match rng.below(10) {
            0..=5 => out.push(zipf.sample(rng)),
            6 | 7 => {}
            _ => {
                out.push(w);
                out.push(zipf.sample(rng));
            }
        }
    }
    out
}

fn render(words: &[usize], vocab: &[String], rng: &mut Rng) -> String {
    let mut s = String::with_capacity(words.len() * 8);
    for (i, &w) in words.iter().enumerate() {
        if i > 0 {
            // Sentence punctuation exercises the normalisation.
            s.push_str(if rng.below(15) == 0 { ". " } else { " " });
        }
        s.push_str(&vocab[w]);
    }
    s.push('.');
    s
}

/// `dedup-bench corpus`.
pub fn main(args: &[String]) -> Result<(), String> {
    let docs: u64 = arg(args, "--docs", None)?;
    let out: PathBuf = arg(args, "--out", None)?;
    let seed: u64 = arg(args, "--seed", Some(42))?;
    let mean_words: u64 = arg(args, "--words", Some(220))?;
    if mean_words < 2 {
        return Err("--words must be at least 2".to_owned());
    }
    let mut rng = Rng(seed);
    let (vocab, source) = vocabulary(&mut rng);
    let zipf = Zipf::new(vocab.len());
    let file = File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    // Copies waiting for their line: emit position -> (group, edit rate, text).
    let mut pending: BTreeMap<(u64, u64), (u64, f64, String)> = BTreeMap::new();
    let (mut id, mut seq) = (0u64, 0u64);
    let (mut near, mut exact) = (0u64, 0u64);
    while id < docs {
        let line = match pending.first_entry() {
            Some(e) if e.key().0 <= id => {
                let (group, rate, text) = e.remove();
                serde_json::json!({"id": id.to_string(), "text": text, "group": group, "edit_rate": rate})
            }
            _ => {
                let len = mean_words / 2 + rng.below(mean_words + 1);
                let words: Vec<usize> = (0..len).map(|_| zipf.sample(&mut rng)).collect();
                let text = render(&words, &vocab, &mut rng);
                if rng.unit() < 0.25 {
                    for _ in 0..1 + rng.below(3) {
                        let rate = EDIT_RATES[rng.below(EDIT_RATES.len() as u64) as usize];
                        let copy = render(&edit(&words, rate, &zipf, &mut rng), &vocab, &mut rng);
                        seq += 1;
                        pending.insert((id + 1 + rng.below(2000), seq), (id, rate, copy));
                        near += 1;
                    }
                }
                if rng.unit() < 0.05 {
                    seq += 1;
                    pending.insert((id + 1 + rng.below(2000), seq), (id, 0.0, text.clone()));
                    exact += 1;
                }
                serde_json::json!({"id": id.to_string(), "text": text, "group": id})
            }
        };
        serde_json::to_writer(&mut w, &line).map_err(|e| e.to_string())?;
        w.write_all(b"\n").map_err(|e| e.to_string())?;
        id += 1;
    }
    w.flush().map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "wrote {docs} docs to {} (vocabulary: {} words from {source}; planted {near} near and {exact} exact copies, {} cut off at the end)",
        out.display(),
        vocab.len(),
        pending.len()
    );
    Ok(())
}
