//! Property tests of normalisation, URL canonicalisation and the spill partitioner.

use std::collections::BTreeMap;

use curate_dedup::spill::{SpillConfig, SpillWriter};
use curate_dedup::url::{normalize_url, UrlNormOptions};
use curate_dedup::{content_hash, normalize, TextNorm};
use proptest::prelude::*;

/// Straightforward char-by-char statement of the normalisation rules, to check the fast path.
fn reference_normalize(s: &str, norm: TextNorm) -> String {
    let kept: String = match norm {
        TextNorm::LowercasePunct => s
            .chars()
            .filter(|c| c.is_whitespace() || c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect(),
        _ => s.to_owned(),
    };
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

proptest! {
    #[test]
    fn fast_normalisation_matches_reference(s in "(\\PC|[ a-zA-Z0-9.,'\t\n])*") {
        for norm in [TextNorm::Whitespace, TextNorm::LowercasePunct] {
            prop_assert_eq!(normalize(&s, norm).into_owned(), reference_normalize(&s, norm));
        }
    }

    #[test]
    fn text_normalisation_is_idempotent(s in "\\PC{0,80}") {
        for norm in [TextNorm::Whitespace, TextNorm::LowercasePunct] {
            let once = normalize(&s, norm).into_owned();
            prop_assert_eq!(normalize(&once, norm), once.as_str());
            prop_assert!(!once.starts_with(' ') && !once.ends_with(' ') && !once.contains("  "));
            prop_assert_eq!(content_hash(&s, norm), content_hash(&once, norm));
        }
    }

    #[test]
    fn url_normalisation_is_idempotent(
        scheme in "(http|HTTPS|ftp)",
        host in "(www\\.)?[a-zA-Z0-9]{1,8}(\\.[a-z]{2,3})?",
        port in proptest::option::of(0u16..10000),
        path in "(/[a-zA-Z0-9%._-]{0,6}){0,3}/?",
        query in proptest::collection::vec("[a-z]{1,3}=[a-z0-9]{0,3}", 0..4),
        frag in proptest::option::of("[a-z]{0,4}"),
    ) {
        let mut url = format!("{scheme}://{host}");
        if let Some(p) = port { url += &format!(":{p}"); }
        url += &path;
        if !query.is_empty() { url += &format!("?{}", query.join("&")); }
        if let Some(f) = frag { url += &format!("#{f}"); }
        let opts = UrlNormOptions::default();
        let once = normalize_url(&url, &opts).unwrap();
        prop_assert_eq!(normalize_url(&once, &opts).unwrap(), once.clone());
        prop_assert!(!once.contains('#') && !once.contains("://www."));
        // Query order never matters under the default options.
        if query.len() > 1 {
            let mut rev = query.clone();
            rev.reverse();
            let swapped = url.replacen(&query.join("&"), &rev.join("&"), 1);
            prop_assert_eq!(normalize_url(&swapped, &opts).unwrap(), once);
        }
    }

    #[test]
    fn spill_returns_every_record_grouped(
        records in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..6), proptest::collection::vec(any::<u8>(), 0..300)), 0..300),
        partitions in 1usize..9,
        per_partition in 64usize..512,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let limit = partitions * per_partition;
        let mut w = SpillWriter::new(&SpillConfig { dir: dir.path().to_owned(), partitions, memory_limit: limit }).unwrap();
        let mut expected: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
        for (k, p) in &records {
            w.push(k, p).unwrap();
            expected.entry(k.clone()).or_default().push(p.clone());
        }
        prop_assert!(w.peak_buffered_bytes() <= limit);
        let r = w.finish().unwrap();
        let mut got: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
        for p in 0..partitions {
            for g in r.read_partition(p).unwrap().groups() {
                prop_assert!(got.insert(g.key().to_vec(), g.payloads().map(<[u8]>::to_vec).collect()).is_none());
            }
        }
        expected.values_mut().for_each(|v| v.sort());
        prop_assert_eq!(got, expected);
    }
}
