//! Exact and URL dedup wired as the engine will: map to a key, partition through the spill,
//! pick one survivor per key in the reduce.

use curate_dedup::keep::{pick, SortKey};
use curate_dedup::spill::{SpillConfig, SpillWriter};
use curate_dedup::url::{url_key, UrlNormOptions};
use curate_dedup::{content_hash, TextNorm};

/// Runs map -> spill -> reduce and returns the surviving ids, sorted.
fn dedup_by_key(records: &[(u64, SortKey, u128)]) -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SpillWriter::new(&SpillConfig {
        dir: dir.path().to_owned(),
        partitions: 3,
        memory_limit: 512,
    })
    .unwrap();
    for &(id, key, hash) in records {
        let payload: Vec<u8> = id
            .to_le_bytes()
            .into_iter()
            .chain(key.0.to_le_bytes())
            .collect();
        w.push(&hash.to_be_bytes(), &payload).unwrap();
    }
    let r = w.finish().unwrap();
    let mut kept = Vec::new();
    for p in 0..r.num_partitions() {
        for g in r.read_partition(p).unwrap().groups() {
            let group: Vec<(SortKey, u64)> = g
                .payloads()
                .map(|b| {
                    let id = u64::from_le_bytes(b[..8].try_into().unwrap());
                    (SortKey(u64::from_le_bytes(b[8..].try_into().unwrap())), id)
                })
                .collect();
            kept.push(group[pick(&group).unwrap()].1);
        }
    }
    kept.sort_unstable();
    kept
}

#[test]
fn exact_dedup_fixture() {
    let docs = [
        (1, "Hello  world."),
        (2, "hello world"),
        (3, "HELLO,  WORLD!!"),
        (4, "goodbye"),
        (5, "Hello world."),
    ];
    let expected = [
        (TextNorm::None, vec![1, 2, 3, 4, 5]),
        (TextNorm::Whitespace, vec![1, 2, 3, 4]),
        (TextNorm::LowercasePunct, vec![1, 4]),
    ];
    for (norm, want) in expected {
        let records: Vec<_> = docs
            .iter()
            .map(|&(id, t)| (id, SortKey::FIRST, content_hash(t, norm)))
            .collect();
        assert_eq!(dedup_by_key(&records), want, "{norm:?}");
    }
    // keep: longest picks "HELLO,  WORLD!!" (15 bytes) among the lowercase_punct duplicates.
    let records: Vec<_> = docs
        .iter()
        .map(|&(id, t)| {
            (
                id,
                SortKey::from_len(t.len()),
                content_hash(t, TextNorm::LowercasePunct),
            )
        })
        .collect();
    assert_eq!(dedup_by_key(&records), vec![3, 4]);
}

#[test]
fn url_dedup_fixture() {
    let urls = [
        (10, "https://Example.com/a/?b=2&a=1#top"),
        (11, "https://www.example.com/a?a=1&b=2"),
        (12, "https://example.com:443/a"),
        (13, "http://example.com/a?a=1&b=2"),
        (14, "https://example.com/a?a=1&b=3"),
    ];
    let opts = UrlNormOptions::default();
    let records: Vec<_> = urls
        .iter()
        .map(|&(id, u)| (id, SortKey::FIRST, url_key(u, &opts).unwrap()))
        .collect();
    assert_eq!(dedup_by_key(&records), vec![10, 12, 13, 14]);
}
