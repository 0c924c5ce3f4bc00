//! Language identification with models compiled into the binary (whatlang's trigram
//! profiles of 69 languages): nothing is downloaded or read at run time.
//!
//! Languages are named by ISO 639-1 codes (`en`, `de`, `zh`); whatlang's Mandarin is `zh`
//! and its Norwegian Bokmål `nb`.

use whatlang::Lang;

/// The most likely language of a text and the detector's confidence in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// ISO 639-1 code.
    pub lang: &'static str,
    /// Confidence in `[0, 1]`.
    pub score: f64,
}

/// ISO 639-3 code (whatlang's naming) to ISO 639-1, for every language whatlang knows.
const ISO_639_1: &[(&str, &str)] = &[
    ("afr", "af"), ("aka", "ak"), ("amh", "am"), ("ara", "ar"), ("aze", "az"), ("bel", "be"), ("ben", "bn"),
    ("bul", "bg"), ("cat", "ca"), ("ces", "cs"), ("cmn", "zh"), ("dan", "da"), ("deu", "de"), ("ell", "el"),
    ("eng", "en"), ("epo", "eo"), ("est", "et"), ("fin", "fi"), ("fra", "fr"), ("guj", "gu"), ("heb", "he"),
    ("hin", "hi"), ("hrv", "hr"), ("hun", "hu"), ("hye", "hy"), ("ind", "id"), ("ita", "it"), ("jav", "jv"),
    ("jpn", "ja"), ("kan", "kn"), ("kat", "ka"), ("khm", "km"), ("kor", "ko"), ("lat", "la"), ("lav", "lv"),
    ("lit", "lt"), ("mal", "ml"), ("mar", "mr"), ("mkd", "mk"), ("mya", "my"), ("nep", "ne"), ("nld", "nl"),
    ("nob", "nb"), ("ori", "or"), ("pan", "pa"), ("pes", "fa"), ("pol", "pl"), ("por", "pt"), ("ron", "ro"),
    ("rus", "ru"), ("sin", "si"), ("slk", "sk"), ("slv", "sl"), ("sna", "sn"), ("spa", "es"), ("srp", "sr"),
    ("swe", "sv"), ("tam", "ta"), ("tel", "te"), ("tgl", "tl"), ("tha", "th"), ("tuk", "tk"), ("tur", "tr"),
    ("ukr", "uk"), ("urd", "ur"), ("uzb", "uz"), ("vie", "vi"), ("yid", "yi"), ("zul", "zu"),
];

fn iso_639_1(lang: Lang) -> Option<&'static str> {
    let code = lang.code();
    ISO_639_1.iter().find(|(three, _)| *three == code).map(|(_, two)| *two)
}

/// ISO 639-1 codes of every language the detector can return, sorted.
pub fn supported() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = Lang::all().iter().filter_map(|&l| iso_639_1(l)).collect();
    codes.sort_unstable();
    codes
}

/// The most likely language of `text`, or `None` when it has no letters to judge by.
pub fn detect(text: &str) -> Option<Detection> {
    let info = whatlang::detect(text)?;
    Some(Detection { lang: iso_639_1(info.lang())?, score: info.confidence() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_detectable_language_has_a_two_letter_code() {
        let unmapped: Vec<&str> = Lang::all().iter().filter(|&&l| iso_639_1(l).is_none()).map(|l| l.code()).collect();
        assert_eq!(unmapped, Vec::<&str>::new());
        let codes = supported();
        assert_eq!(codes.len(), Lang::all().len(), "two languages share a code");
        assert!(codes.windows(2).all(|w| w[0] < w[1]));
    }
}
