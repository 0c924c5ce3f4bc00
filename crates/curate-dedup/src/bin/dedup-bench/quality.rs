//! `quality`: precision and recall of the default MinHash dedup against exact Jaccard on a
//! corpus from `dedup-bench corpus`.
//!
//! * Truth pairs: every planted copy with its original. Recall in a Jaccard bin is the share of
//!   truth pairs in that bin whose two documents end in the same cluster.
//! * Predictions: every removed document with the survivor kept for it. Precision is the share
//!   whose true Jaccard with that survivor is at least the threshold.
//!
//! True Jaccard is computed on sets of n-gram strings of the normalised text (no hashing).

use std::collections::{HashMap, HashSet};

use curate_dedup::{normalize, MinHashParams, TextSource};

use crate::arg;
use crate::run::dedup;

const BINS: [f64; 9] = [0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0];

fn bin_of(j: f64) -> usize {
    BINS[1..BINS.len() - 1]
        .iter()
        .take_while(|&&edge| j >= edge)
        .count()
}

fn bin_label(b: usize) -> String {
    let close = if b + 2 == BINS.len() { "]" } else { ")" };
    format!("[{:.2},{:.2}{close}", BINS[b], BINS[b + 1])
}

/// Exact Jaccard of the word n-gram sets of two texts.
fn true_jaccard(a: &str, b: &str, params: &MinHashParams) -> f64 {
    let (na, nb) = (normalize(a, params.norm), normalize(b, params.norm));
    let grams = |s: &str| -> HashSet<String> {
        let words: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
        if words.len() <= params.ngram {
            return if words.is_empty() {
                HashSet::new()
            } else {
                HashSet::from([words.join(" ")])
            };
        }
        words.windows(params.ngram).map(|w| w.join(" ")).collect()
    };
    let (sa, sb) = (grams(&na), grams(&nb));
    let inter = sa.intersection(&sb).count();
    let union = sa.len() + sb.len() - inter;
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// `dedup-bench quality`.
pub fn main(args: &[String]) -> Result<(), String> {
    let params = MinHashParams {
        threshold: arg(
            args,
            "--threshold",
            Some(MinHashParams::default().threshold),
        )?,
        ..MinHashParams::default()
    };
    // (group, is_copy) per line.
    let mut truth: Vec<(Option<u64>, bool)> = Vec::new();
    let outcome = dedup(args, |_, line| {
        truth.push((line.group, line.edit_rate.is_some()))
    })?;
    let d = &outcome.decisions;
    let pos: HashMap<u64, usize> = d.iter().enumerate().map(|(i, x)| (x.id, i)).collect();
    let (mut a, mut b) = (String::new(), String::new());
    let mut text_pair = |i: usize, j: usize| -> Result<f64, String> {
        outcome.corpus.text(i, &mut a).map_err(|e| e.to_string())?;
        outcome.corpus.text(j, &mut b).map_err(|e| e.to_string())?;
        Ok(true_jaccard(&a, &b, &params))
    };

    let mut recall = [(0usize, 0usize); BINS.len() - 1];
    for (i, &(group, is_copy)) in truth.iter().enumerate() {
        let Some(orig) = group.filter(|_| is_copy).and_then(|g| pos.get(&g).copied()) else {
            continue;
        };
        let bin = bin_of(text_pair(i, orig)?);
        recall[bin].0 += 1;
        if d[i].cluster_id == d[orig].cluster_id {
            recall[bin].1 += 1;
        }
    }

    let mut precision = [(0usize, 0usize); BINS.len() - 1];
    let (mut correct, mut removed, mut unrelated) = (0usize, 0usize, 0usize);
    for (i, x) in d.iter().enumerate().filter(|(_, x)| !x.kept) {
        let s = pos[&x.cluster_id];
        let j = text_pair(i, s)?;
        removed += 1;
        precision[bin_of(j)].0 += 1;
        if j >= params.threshold {
            correct += 1;
        }
        if truth[i].0 != truth[s].0 {
            unrelated += 1;
        }
    }

    println!(
        "docs: {}  removed: {removed}  removed outside their planted group: {unrelated}",
        d.len()
    );
    println!(
        "{:<13} {:>11} {:>9} {:>8}   {:>15}",
        "true Jaccard", "truth pairs", "detected", "recall", "removed in bin"
    );
    for b in 0..BINS.len() - 1 {
        let (n, hit) = recall[b];
        let r = if n == 0 {
            "-".to_owned()
        } else {
            format!("{:.4}", hit as f64 / n as f64)
        };
        println!(
            "{:<13} {n:>11} {hit:>9} {r:>8}   {:>15}",
            bin_label(b),
            precision[b].0
        );
    }
    let agg = |from: f64| {
        let (n, hit) = recall
            .iter()
            .enumerate()
            .filter(|(b, _)| BINS[*b] >= from)
            .fold((0, 0), |acc, (_, r)| (acc.0 + r.0, acc.1 + r.1));
        (hit as f64 / n.max(1) as f64, n)
    };
    let (r85, n85) = agg(0.85);
    let (r80, n80) = agg(0.8);
    println!("recall (true J >= 0.85): {r85:.4} over {n85} pairs");
    println!("recall (true J >= 0.80): {r80:.4} over {n80} pairs");
    println!(
        "precision (removed doc has true J >= {} with its survivor): {:.4} ({correct}/{removed})",
        params.threshold,
        correct as f64 / removed.max(1) as f64
    );
    Ok(())
}
