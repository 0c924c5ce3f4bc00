//! `language-id-candidates DETECTOR IN.jsonl OUT.jsonl`: the same contract as
//! `curate-lang-eval` (writes `{"lang", "pred", "score"}` per line, prints
//! `{"texts", "bytes", "seconds"}`), for detectors curate-lang might switch to.
//!
//! DETECTOR is `whichlang` or `lingua-SET[-low]`, SET one of `all` (lingua's 75 languages),
//! `whatlang` (the 56 of whatlang 0.16's 69 that lingua has), `web` (those less seven
//! Latin-script languages rare on the web) or `bench` (the 27 languages of the corpus).
//! `-low` selects lingua's low accuracy mode. Detection runs twice; `seconds` is the
//! faster pass (the first also loads lingua's models lazily), `seconds_passes` both.

use std::error::Error;
use std::io::Write;
use std::str::FromStr;
use std::time::Instant;

use lingua::{IsoCode639_1, Language, LanguageDetectorBuilder};
use serde_json::Value;

/// ISO 639-1 codes of whatlang 0.16's languages (see curate-lang).
const WHATLANG: &[&str] = &[
    "af", "ak", "am", "ar", "az", "be", "bn", "bg", "ca", "cs", "zh", "da", "de", "el", "en", "eo", "et", "fi",
    "fr", "gu", "he", "hi", "hr", "hu", "hy", "id", "it", "jv", "ja", "kn", "ka", "km", "ko", "la", "lv", "lt",
    "ml", "mr", "mk", "my", "ne", "nl", "nb", "or", "pa", "fa", "pl", "pt", "ro", "ru", "si", "sk", "sl", "sn",
    "es", "sr", "sv", "ta", "te", "tl", "th", "tk", "tr", "uk", "ur", "uz", "vi", "yi", "zu",
];

/// Latin-script languages of whatlang's set left out of `web`: each Latin-script language
/// lingua scores costs about 2% of its speed, and these are rare on the web.
const RARE_LATIN: &[&str] = &["af", "az", "eo", "la", "sn", "tl", "zu"];

/// The languages of the bench corpus.
const BENCH: &[&str] = &[
    "cs", "da", "de", "el", "en", "es", "fi", "fr", "hr", "hu", "id", "it", "ja", "ko", "mk", "nb", "nl", "pl",
    "pt", "ro", "ru", "sl", "sr", "sv", "tr", "uk", "zh",
];

type Detect = Box<dyn Fn(&str) -> Option<(String, f64)>>;

fn lingua_languages(codes: &[&str]) -> Vec<Language> {
    // Codes lingua lacks (ak, am, jv, ...) are skipped: that is the language set compared.
    codes
        .iter()
        .filter_map(|c| IsoCode639_1::from_str(c).ok())
        .map(|c| Language::from_iso_code_639_1(&c))
        .collect()
}

fn detector(name: &str) -> Result<Detect, String> {
    if name == "whichlang" {
        // whichlang has no confidence: every answer scores 1.
        return Ok(Box::new(|t: &str| Some((whichlang_code(whichlang::detect_language(t)).to_string(), 1.0))));
    }
    let spec = name.strip_prefix("lingua-").ok_or_else(|| format!("unknown detector `{name}`"))?;
    let (set, low) = match spec.strip_suffix("-low") {
        Some(set) => (set, true),
        None => (spec, false),
    };
    let mut builder = match set {
        "all" => LanguageDetectorBuilder::from_all_languages(),
        "whatlang" => LanguageDetectorBuilder::from_languages(&lingua_languages(WHATLANG)),
        "web" => {
            let codes: Vec<&str> = WHATLANG.iter().copied().filter(|c| !RARE_LATIN.contains(c)).collect();
            LanguageDetectorBuilder::from_languages(&lingua_languages(&codes))
        }
        "bench" => LanguageDetectorBuilder::from_languages(&lingua_languages(BENCH)),
        _ => return Err(format!("unknown lingua language set `{set}`")),
    };
    if low {
        builder.with_low_accuracy_mode();
    }
    let detector = builder.build();
    Ok(Box::new(move |t: &str| {
        // One pass gives both answers: the values come sorted, most likely first, and all
        // zero when nothing could be judged.
        let (lang, score) = *detector.compute_language_confidence_values(t).first()?;
        (score > 0.0).then(|| (lang.iso_code_639_1().to_string().to_lowercase(), score))
    }))
}

fn whichlang_code(lang: whichlang::Lang) -> &'static str {
    use whichlang::Lang::*;
    match lang {
        Ara => "ar",
        Cmn => "zh",
        Deu => "de",
        Eng => "en",
        Fra => "fr",
        Hin => "hi",
        Ita => "it",
        Jpn => "ja",
        Kor => "ko",
        Nld => "nl",
        Por => "pt",
        Rus => "ru",
        Spa => "es",
        Swe => "sv",
        Tur => "tr",
        Vie => "vi",
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, name, input, out] = &args[..] else {
        return Err("usage: language-id-candidates DETECTOR IN.jsonl OUT.jsonl".into());
    };
    let detect = detector(name)?;
    let rows = std::fs::read_to_string(input)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<Value>, _>>()?;
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap_or_default()).collect();
    let mut passes = Vec::new();
    let mut found = Vec::new();
    for _ in 0..2 {
        let start = Instant::now();
        found = texts.iter().map(|t| detect(t)).collect::<Vec<_>>();
        passes.push(start.elapsed().as_secs_f64());
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    for (row, d) in rows.iter().zip(&found) {
        let line = serde_json::json!({
            "lang": row["lang"],
            "pred": d.as_ref().map(|d| d.0.as_str()),
            "score": d.as_ref().map(|d| d.1),
        });
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    let seconds = passes.iter().copied().fold(f64::INFINITY, f64::min);
    println!("{}", serde_json::json!({ "texts": texts.len(), "bytes": bytes, "seconds": seconds, "seconds_passes": passes }));
    Ok(())
}
