//! Differential checks against the reference libraries on real model files
//! (`scripts/models.sh`): the same token ids, and vectors with cosine >= 0.999 to what
//! sentence-transformers (all-MiniLM-L6-v2) and wordllama compute for 42 varied texts
//! (fixtures written by bench/embed/reference.py); logits of a real BERT classifier
//! (categorium's English topic model) as transformers computes them
//! (bench/embed/categorium_reference.py).

use std::path::PathBuf;

use curate_embed::{EmbedOptions, Embedder, Scorer};
use serde_json::Value;

fn models() -> PathBuf {
    let dir = std::env::var_os("CURATE_MODELS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.models"));
    assert!(dir.join(".packages").exists(), "{} has no models: run scripts/models.sh", dir.display());
    dir
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if na == 0.0 && nb == 0.0 {
        return 1.0;
    }
    dot / (na * nb)
}

/// Checks ids and vectors of every fixture row; returns the smallest cosine.
fn check(model: &Embedder, reference: &Value, min_cosine: f64) -> f64 {
    let texts = fixture("reference_texts.json");
    let texts: Vec<(&str, &str)> = texts.as_array().unwrap().iter().map(|t| (t["id"].as_str().unwrap(), t["text"].as_str().unwrap())).collect();
    let rows = reference["rows"].as_array().unwrap();
    assert_eq!(rows.len(), texts.len());
    let all: Vec<&str> = texts.iter().map(|t| t.1).collect();
    let vectors = model.embed(&all).unwrap();
    let dim = model.dim();
    let mut worst = f64::INFINITY;
    let mut failures = Vec::new();
    for (i, ((id, text), row)) in texts.iter().zip(rows).enumerate() {
        assert_eq!(row["id"].as_str(), Some(*id));
        let want_ids: Vec<u32> = row["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(model.token_ids(text).unwrap(), want_ids, "token ids of {id}");
        let want: Vec<f64> = row["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let got = &vectors[i * dim..(i + 1) * dim];
        let c = cosine(got, &want);
        worst = worst.min(c);
        if c < min_cosine {
            failures.push(format!("{id}: cosine {c}"));
        }
        // Lengths agree too (unit vectors, or wordllama's raw means).
        let (ng, nw) = (got.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt(), want.iter().map(|y| y * y).sum::<f64>().sqrt());
        assert!((ng - nw).abs() <= 1e-3 * nw.max(1e-6), "{id}: |v| {ng} vs {nw}");
    }
    assert!(failures.is_empty(), "{failures:?}");
    worst
}

#[test]
fn minilm_matches_sentence_transformers() {
    let model = Embedder::load(&models().join("all-MiniLM-L6-v2"), &EmbedOptions::default()).unwrap();
    assert_eq!((model.kind(), model.dim()), ("bert", 384));
    let worst = check(&model, &fixture("minilm.json"), 0.999);
    eprintln!("all-MiniLM-L6-v2: smallest cosine to sentence-transformers {worst}");
}

#[test]
fn wordllama_matches_the_wordllama_package() {
    let model = Embedder::load(&models().join("wordllama-l2-256"), &EmbedOptions::default()).unwrap();
    assert_eq!((model.kind(), model.dim()), ("static", 256));
    let worst = check(&model, &fixture("wordllama.json"), 0.99999);
    eprintln!("wordllama: smallest cosine to the wordllama package {worst}");
}

#[test]
fn vectors_do_not_depend_on_what_else_is_in_the_batch() {
    // Texts run in groups of about 2,048 tokens; each vector must be bit for bit the one of
    // the text alone, whatever its neighbours and position in the group.
    let model = Embedder::load(&models().join("all-MiniLM-L6-v2"), &EmbedOptions::default()).unwrap();
    let texts = fixture("reference_texts.json");
    let texts: Vec<&str> = texts.as_array().unwrap().iter().map(|t| t["text"].as_str().unwrap()).collect();
    let alone: Vec<Vec<f32>> = texts.iter().map(|t| model.embed(&[t]).unwrap()).collect();
    for round in 0..4usize {
        // Different neighbours each round: rotated, and every other text repeated.
        let order: Vec<usize> = (0..texts.len() * 3).map(|i| (i * (2 * round + 1) + round * 7) % texts.len()).collect();
        let batch: Vec<&str> = order.iter().map(|&i| texts[i]).collect();
        let together = model.embed(&batch).unwrap();
        for (k, &i) in order.iter().enumerate() {
            assert_eq!(alone[i], together[k * 384..(k + 1) * 384].to_vec(), "round {round}, text {i} at {k}");
        }
    }
}

#[test]
fn model_files_are_checked_and_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Embedder::load(&dir.path().join("nope"), &EmbedOptions::default()).err().unwrap().to_string();
    assert!(err.ends_with("nope: no such model directory"), "{err}");
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "llama"}"#).unwrap();
    let err = Embedder::load(dir.path(), &EmbedOptions::default()).err().unwrap().to_string();
    assert!(err.contains("config.json") && err.contains("missing field"), "{err}");
    // A digest changes with any model file.
    let src = models().join("wordllama-l2-256");
    let a = Embedder::load(&src, &EmbedOptions::default()).unwrap().digest().to_string();
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["tokenizer.json", "model.safetensors"] {
        std::fs::copy(src.join(f), copy.join(f)).unwrap();
    }
    assert_eq!(Embedder::load(&copy, &EmbedOptions::default()).unwrap().digest(), a);
    let tok = std::fs::read_to_string(copy.join("tokenizer.json")).unwrap();
    std::fs::write(copy.join("tokenizer.json"), format!("{tok} ")).unwrap();
    assert_ne!(Embedder::load(&copy, &EmbedOptions::default()).unwrap().digest(), a);
}

#[test]
fn a_bert_classifier_matches_transformers() {
    let model = Scorer::load(&models().join("categorium-en"), &EmbedOptions::default()).unwrap();
    let reference = fixture("categorium_scores.json");
    assert!(!model.is_regression());
    let labels: Vec<&str> = reference["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(model.labels(), labels.as_slice());
    let texts = fixture("reference_texts.json");
    let texts: Vec<&str> = texts.as_array().unwrap().iter().map(|t| t["text"].as_str().unwrap()).collect();
    let logits = model.logits(&texts).unwrap();
    let n = labels.len();
    let mut worst = 0.0f64;
    for (i, row) in reference["rows"].as_array().unwrap().iter().enumerate() {
        let want_ids: Vec<u32> = row["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(model.token_ids(texts[i]).unwrap(), want_ids, "token ids of {}", row["id"]);
        let want: Vec<f64> = row["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let got = &logits[i * n..(i + 1) * n];
        for (g, w) in got.iter().zip(&want) {
            worst = worst.max((f64::from(*g) - w).abs());
        }
        let top = got.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (j, &v)| if v > b.1 { (j, v) } else { b }).0;
        assert_eq!(labels[top], row["label"].as_str().unwrap(), "{}", row["id"]);
    }
    assert!(worst < 1e-4, "largest logit difference {worst}");
    eprintln!("categorium-en: largest logit difference to transformers {worst}");
    // Texts are grouped through the encoder; each text's logits are those of the text alone.
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(model.logits(&[text]).unwrap(), &logits[i * n..(i + 1) * n], "text {i} alone");
    }
}
