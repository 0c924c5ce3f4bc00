//! End-to-end tests of MinHash dedup: fixtures, order independence, index persistence,
//! parameter errors, and randomised invariants.

use std::collections::HashMap;

use curate_dedup::minhash::{
    jaccard, Decision, DocMeta, LshIndex, MinHashDedup, MinHashParams, MinHasher,
};
use curate_dedup::{DedupError, SortKey, SpillConfig, TextNorm};
use proptest::prelude::*;

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
}

fn words(rng: &mut Rng, n: usize) -> Vec<String> {
    (0..n).map(|_| format!("w{}", rng.below(5000))).collect()
}

/// Replaces `edits` distinct word positions (spread evenly) with fresh words.
fn edited(base: &[String], edits: usize, rng: &mut Rng) -> Vec<String> {
    let mut out = base.to_vec();
    for e in 0..edits {
        let pos = (e * base.len()) / edits.max(1) + base.len() / (2 * edits.max(1));
        out[pos.min(base.len() - 1)] = format!("x{}", rng.below(1 << 40));
    }
    out
}

fn spill(dir: &tempfile::TempDir, memory_limit: usize) -> SpillConfig {
    SpillConfig {
        dir: dir.path().to_owned(),
        partitions: 8,
        memory_limit,
    }
}

fn run(docs: &[DocMeta], texts: &[String], index: Option<&mut LshIndex>) -> Vec<Decision> {
    let dir = tempfile::tempdir().unwrap();
    let dedup = MinHashDedup::new(MinHashParams::default(), spill(&dir, 1 << 20)).unwrap();
    dedup.run(docs, texts, index).unwrap()
}

fn first(ids: impl IntoIterator<Item = u64>) -> Vec<DocMeta> {
    ids.into_iter()
        .map(|id| DocMeta {
            id,
            sort_key: SortKey::FIRST,
        })
        .collect()
}

fn fixture() -> Vec<String> {
    let mut rng = Rng(1);
    let a = words(&mut rng, 60);
    let b = words(&mut rng, 60);
    vec![
        a.join(" "),
        edited(&a, 1, &mut rng).join(" "),
        // Same words as doc 0 once normalised: case and punctuation differ.
        format!("{}!", a.join(",  ").to_uppercase()),
        b.join(" "),
        edited(&b, 20, &mut rng).join(" "),
        String::new(),
    ]
}

#[test]
fn fixture_exact_outputs() {
    let texts = fixture();
    let d = run(&first([10, 11, 12, 13, 14, 15]), &texts, None);
    // 60 words -> 56 five-grams; one substituted word changes 5 of them: 51 / (56 + 5).
    let expected = [
        Decision {
            id: 10,
            kept: true,
            cluster_id: 10,
            cluster_size: 3,
            jaccard: None,
        },
        Decision {
            id: 11,
            kept: false,
            cluster_id: 10,
            cluster_size: 3,
            jaccard: Some(51.0 / 61.0),
        },
        Decision {
            id: 12,
            kept: false,
            cluster_id: 10,
            cluster_size: 3,
            jaccard: Some(1.0),
        },
        Decision {
            id: 13,
            kept: true,
            cluster_id: 13,
            cluster_size: 1,
            jaccard: None,
        },
        Decision {
            id: 14,
            kept: true,
            cluster_id: 14,
            cluster_size: 1,
            jaccard: None,
        },
        Decision {
            id: 15,
            kept: true,
            cluster_id: 15,
            cluster_size: 1,
            jaccard: None,
        },
    ];
    assert_eq!(d, expected);

    // keep: highest -> the greatest sort key wins, whatever its position.
    let mut docs = first([10, 11, 12, 13, 14, 15]);
    docs[1].sort_key = SortKey::from_f64(0.9);
    docs[2].sort_key = SortKey::from_f64(0.5);
    let d = run(&docs, &texts, None);
    assert_eq!(
        (d[1].kept, d[0].cluster_id, d[2].cluster_id),
        (true, 11, 11)
    );
    assert_eq!(d[2].jaccard, Some(51.0 / 61.0));
}

#[test]
fn shingles_and_signature_fixtures() {
    let h = MinHasher::new(MinHashParams {
        ngram: 2,
        ..MinHashParams::default()
    })
    .unwrap();
    assert_eq!(h.shingles("A b, c").len(), 2);
    assert_eq!(h.shingles("a b c"), h.shingles("A  B\nc!"));
    assert_eq!(h.shingles("solo").len(), 1);
    assert!(h.shingles(" ?! ").is_empty());
    assert!(h.band_keys(&[]).is_empty());
    let s = h.shingles("one two three four five six");
    assert_eq!(h.signature(&s).len(), 14 * 8);
    assert_eq!(h.band_keys(&s).len(), 14);
    assert_eq!(jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
    assert_eq!(jaccard(&[], &[]), 0.0);
}

/// Corpus of `groups` clusters (base + exact copy + light edits) plus unrelated docs.
fn clustered_corpus(seed: u64, groups: usize) -> Vec<String> {
    let mut rng = Rng(seed);
    let mut texts = Vec::new();
    for _ in 0..groups {
        let len = 80 + rng.below(80) as usize;
        let base = words(&mut rng, len);
        texts.push(base.join(" "));
        texts.push(base.join(" "));
        for _ in 0..rng.below(3) {
            texts.push(edited(&base, 1 + rng.below(2) as usize, &mut rng).join(" "));
        }
        texts.push(words(&mut rng, 100).join(" "));
    }
    texts
}

#[test]
fn shuffled_input_gives_same_survivors_and_clusters() {
    let texts = clustered_corpus(7, 60);
    let docs: Vec<DocMeta> = (0..texts.len() as u64)
        .map(|i| DocMeta {
            id: 1000 + (i * 7919) % 4001,
            sort_key: SortKey::from_len(texts[i as usize].len() % 3),
        })
        .collect();
    let reference: HashMap<u64, Decision> = run(&docs, &texts, None)
        .into_iter()
        .map(|d| (d.id, d))
        .collect();
    assert!(reference.values().filter(|d| !d.kept).count() >= 60);

    let mut rng = Rng(99);
    for round in 0..3 {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let d2: Vec<DocMeta> = order.iter().map(|&i| docs[i]).collect();
        let t2: Vec<String> = order.iter().map(|&i| texts[i].clone()).collect();
        // Vary the spill shape too: partitioning must not change results.
        let dir = tempfile::tempdir().unwrap();
        let cfg = SpillConfig {
            dir: dir.path().to_owned(),
            partitions: 1 + round * 5,
            memory_limit: 4096,
        };
        let out = MinHashDedup::new(MinHashParams::default(), cfg)
            .unwrap()
            .run(&d2, t2.as_slice(), None)
            .unwrap();
        for (pos, d) in out.iter().enumerate() {
            assert_eq!(d.id, d2[pos].id, "decisions must follow input order");
            assert_eq!(&reference[&d.id], d);
        }
    }
}

#[test]
fn index_round_trip_dedups_new_against_old() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lsh.idx");
    let params = MinHashParams::default();
    let mut rng = Rng(3);
    let old_a = words(&mut rng, 100);
    let old_b = words(&mut rng, 100);
    let batch1 = vec![old_a.join(" "), old_a.join(" "), old_b.join(" ")];
    let mut index = LshIndex::new(&params).unwrap();
    let d1 = run(&first([1, 2, 3]), &batch1, Some(&mut index));
    assert_eq!(
        d1.iter().map(|d| d.kept).collect::<Vec<_>>(),
        [true, false, true]
    );
    assert_eq!(index.ids(), &[1, 3]);
    index.save(&path).unwrap();

    let loaded = LshIndex::load(&path, &params).unwrap();
    assert_eq!(loaded, index);

    let new_c = words(&mut rng, 100);
    let batch2 = vec![
        edited(&old_b, 1, &mut rng).join(" "),
        new_c.join(" "),
        edited(&new_c, 1, &mut rng).join(" "),
        words(&mut rng, 100).join(" "),
    ];
    let mut index2 = loaded;
    // Ids smaller than the old ones: index records must still win.
    let d2 = run(&first([0, 50, 51, 52]), &batch2, Some(&mut index2));
    assert_eq!(
        (d2[0].kept, d2[0].cluster_id, d2[0].cluster_size),
        (false, 3, 2)
    );
    assert!(d2[0].jaccard.unwrap() >= 0.8);
    assert_eq!(
        (d2[1].kept, d2[2].kept, d2[2].cluster_id),
        (true, false, 50)
    );
    assert!(d2[3].kept);
    assert_eq!(index2.ids(), &[1, 3, 50, 52]);

    // Reusing an id of the index is refused.
    let err = MinHashDedup::new(params.clone(), spill(&dir, 1 << 16))
        .unwrap()
        .run(&first([3]), &batch2[..1], Some(&mut index2))
        .unwrap_err();
    assert!(matches!(err, DedupError::DuplicateId(3)), "{err}");

    for other in [
        MinHashParams {
            bands: 20,
            ..params.clone()
        },
        MinHashParams {
            rows: 5,
            ..params.clone()
        },
        MinHashParams {
            ngram: 3,
            ..params.clone()
        },
        MinHashParams {
            norm: TextNorm::Whitespace,
            ..params.clone()
        },
    ] {
        let err = LshIndex::load(&path, &other).unwrap_err();
        assert!(
            matches!(err, DedupError::IndexParamsMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("bands=14 rows=8"), "{err}");
    }

    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    assert!(LshIndex::load(&path, &params)
        .unwrap_err()
        .to_string()
        .contains("checksum"));
    std::fs::write(&path, b"not an index at all").unwrap();
    assert!(LshIndex::load(&path, &params)
        .unwrap_err()
        .to_string()
        .contains("magic"));
}

#[test]
fn bad_parameters_are_named() {
    let cases = [
        (
            MinHashParams {
                ngram: 0,
                ..Default::default()
            },
            "ngram",
        ),
        (
            MinHashParams {
                bands: 0,
                ..Default::default()
            },
            "bands",
        ),
        (
            MinHashParams {
                rows: 0,
                ..Default::default()
            },
            "rows",
        ),
        (
            MinHashParams {
                bands: 100,
                rows: 100,
                ..Default::default()
            },
            "4096",
        ),
        (
            MinHashParams {
                threshold: 1.5,
                ..Default::default()
            },
            "threshold",
        ),
        (
            MinHashParams {
                threshold: f64::NAN,
                ..Default::default()
            },
            "threshold",
        ),
        (
            MinHashParams {
                norm: TextNorm::None,
                ..Default::default()
            },
            "normalization",
        ),
    ];
    for (p, word) in cases {
        let err = MinHasher::new(p).unwrap_err().to_string();
        assert!(err.contains(word), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let dedup = MinHashDedup::new(MinHashParams::default(), spill(&dir, 1 << 16)).unwrap();
    let texts = vec!["a".to_owned()];
    assert!(dedup
        .run(&first([1, 2]), texts.as_slice(), None)
        .unwrap_err()
        .to_string()
        .contains("2 metadata rows but 1 texts"));
    let texts = vec!["a".to_owned(), "b".to_owned()];
    assert!(matches!(
        dedup.run(&first([4, 4]), texts.as_slice(), None),
        Err(DedupError::DuplicateId(4))
    ));
    assert!((MinHashParams::default().lsh_threshold() - 0.71899).abs() < 1e-4);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// On random corpora from a tiny vocabulary (many accidental overlaps): every cluster has one
    /// survivor that is its id; removed docs reached the survivor through verified edges, so
    /// each removed doc has a member of its cluster with Jaccard >= threshold; exact copies merge.
    #[test]
    fn random_corpora_invariants(seed in any::<u64>(), n in 1usize..40, vocab in 3u64..30) {
        let mut rng = Rng(seed);
        let mut texts: Vec<String> = (0..n)
            .map(|_| (0..rng.below(30)).map(|_| format!("t{}", rng.below(vocab))).collect::<Vec<_>>().join(" "))
            .collect();
        let copies: Vec<String> = texts.iter().take(3).cloned().collect();
        texts.extend(copies);
        let docs: Vec<DocMeta> = (0..texts.len() as u64).map(|i| DocMeta { id: i * 3 + 1, sort_key: SortKey(rng.below(3)) }).collect();
        let out = run(&docs, &texts, None);
        let h = MinHasher::new(MinHashParams::default()).unwrap();
        let sh: Vec<Vec<u64>> = texts.iter().map(|t| h.shingles(t)).collect();
        let by_id: HashMap<u64, usize> = out.iter().enumerate().map(|(i, d)| (d.id, i)).collect();
        for (i, d) in out.iter().enumerate() {
            let members: Vec<usize> = (0..out.len()).filter(|&j| out[j].cluster_id == d.cluster_id).collect();
            prop_assert_eq!(members.len(), d.cluster_size);
            let s = by_id[&d.cluster_id];
            prop_assert!(out[s].kept);
            prop_assert_eq!(d.kept, s == i);
            for &j in &members {
                prop_assert!((docs[s].sort_key, std::cmp::Reverse(docs[s].id)) >= (docs[j].sort_key, std::cmp::Reverse(docs[j].id)));
            }
            if !d.kept {
                prop_assert_eq!(d.jaccard, Some(jaccard(&sh[i], &sh[s])));
                prop_assert!(members.iter().any(|&j| j != i && jaccard(&sh[i], &sh[j]) >= 0.8));
            }
        }
        for c in 0..3.min(n) {
            if !sh[c].is_empty() {
                prop_assert_eq!(out[c].cluster_id, out[n + c].cluster_id);
            }
        }
    }
}
