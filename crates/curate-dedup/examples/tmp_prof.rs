use curate_dedup::*;
use std::time::Instant;
fn main() {
    let texts: Vec<String> = std::fs::read_to_string("/work/wt-dedup/bench/.work/c20k.jsonl")
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let h = MinHasher::new(MinHashParams::default()).unwrap();
    let t = Instant::now();
    let mut n = 0;
    let sh: Vec<Vec<u64>> = texts
        .iter()
        .map(|t| {
            let s = h.shingles(t);
            n += s.len();
            s
        })
        .collect();
    println!("shingles {:?} avg {}", t.elapsed(), n / texts.len());
    let t = Instant::now();
    let mut x = 0u64;
    for s in &sh {
        x ^= h.band_keys(s)[0];
    }
    println!("bandkeys {:?} {x}", t.elapsed());
    let t = Instant::now();
    let mut x = 0u64;
    for s in &texts {
        let mut b = String::new();
        exact::normalize_into(s, TextNorm::LowercasePunct, &mut b);
        x += b.len() as u64;
    }
    println!("normalize {:?} {x}", t.elapsed());
}
