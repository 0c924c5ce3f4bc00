//! Model operators inside pipelines, on the real model files `scripts/models.sh` installs
//! (all-MiniLM-L6-v2, wordllama's static embeddings, fastText's lid.176): columns written,
//! semantic duplicates removed deterministically, and model identity in the step cache.

mod common;

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::Array;
use common::*;
use serde_json::Value;

/// A model installed by `scripts/models.sh`; fails (never skips) when it is missing.
fn model(name: &str) -> PathBuf {
    let dir = std::env::var_os("CURATE_MODELS").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".models"));
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run scripts/models.sh", path.display());
    path
}

/// Copies a model file or directory into `dest`.
fn copy_model(src: &Path, dest: &Path) {
    if src.is_dir() {
        std::fs::create_dir_all(dest).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            copy_model(&e.path(), &dest.join(e.file_name()));
        }
    } else {
        std::fs::copy(src, dest).unwrap();
    }
}

const DOCS: &[&str] = &[
    "The river flooded the valley after three days of rain. Farmers moved their cattle to higher ground. The town council opened the school gym as a shelter.",
    "Photosynthesis turns light into chemical energy. Chlorophyll absorbs mostly red and blue light. The sugar it makes feeds the whole plant.",
    "The compiler rejected the program because a variable was used after it had been moved. Borrowing the value instead fixed the error.",
    "Our bakery opens at seven and sells sourdough, rye and seeded loaves. Croissants usually run out before nine on weekends.",
    "The orchestra tuned to the oboe before the concert began. The conductor raised her baton and the hall fell silent.",
    "Glaciers carve U-shaped valleys as they move downhill. When they retreat they leave moraines of rock and gravel behind.",
    "To reset the router, hold the small button on the back for ten seconds. The lights will blink and the device restarts with factory settings.",
    "The marathon route follows the harbour, crosses two bridges and finishes in the old market square. Water stations stand every five kilometres.",
];

/// Light paraphrases of `DOCS[0..4]`: sentences reordered, a few words changed.
const PARAPHRASES: &[(usize, &str)] = &[
    (0, "Farmers moved their cattle to higher ground. The river flooded the valley after three days of heavy rain. The town council opened the school gym as a shelter."),
    (1, "Chlorophyll absorbs mostly red and blue light. Photosynthesis turns light into chemical energy. The sugar it produces feeds the whole plant."),
    (2, "Borrowing the value instead fixed the error. The compiler rejected the program because a variable was used after it was moved."),
    (3, "Croissants usually sell out before nine on weekends. Our bakery opens at seven and sells sourdough, rye and seeded loaves."),
];

fn corpus(dir: &Path) {
    let mut lines = String::new();
    for (i, t) in DOCS.iter().enumerate() {
        lines += &format!("{}\n", serde_json::json!({"id": format!("d{i}"), "text": t}));
    }
    for (i, (_, t)) in PARAPHRASES.iter().enumerate() {
        lines += &format!("{}\n", serde_json::json!({"id": format!("p{i}"), "text": t}));
    }
    write(&dir.join("in/docs.jsonl"), lines);
}

fn jsonl(out: &Path, sub: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    for (_, bytes) in tree(out, &[sub]) {
        rows.extend(String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
    }
    rows
}

/// Per step of run `run`: (step, e.g. `01-embed`, reused from the cache).
fn cache_decisions(dir: &Path, run: &str) -> Vec<(String, bool)> {
    let out = curate_ok(dir, &["runs", "show", run, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["tasks"].as_array().unwrap().iter().map(|t| (t["step"].as_str().unwrap().to_string(), t["decision"] == "reused")).collect()
}

#[test]
fn embed_writes_unit_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    let minilm = model("all-MiniLM-L6-v2");
    write(
        &d.join("p.yaml"),
        format!("name: vectors\ninput: {{path: in/*.jsonl, id_field: id}}\nsteps:\n  - op: embed\n    model: {}\noutput: {{path: out}}\n", minilm.display()),
    );
    curate_ok(d, &["run", "p.yaml", "--no-registry"]);
    let batches: Vec<_> = std::fs::read_dir(d.join("out/data")).unwrap().flat_map(|f| read_parquet(&f.unwrap().path())).collect();
    let ids = strings(&batches, "id");
    let mut vectors = Vec::new();
    for b in &batches {
        let col = b.column_by_name("embedding").unwrap();
        let list = col.as_list_opt::<i32>().map(|l| (0..l.len()).map(|i| (!l.is_null(i)).then(|| l.value(i))).collect::<Vec<_>>());
        let list = list.unwrap_or_else(|| {
            let l = col.as_fixed_size_list();
            (0..l.len()).map(|i| (!l.is_null(i)).then(|| l.value(i))).collect()
        });
        for v in list {
            vectors.push(v.map(|a| a.as_primitive::<Float32Type>().values().to_vec()));
        }
    }
    assert_eq!(ids.len(), DOCS.len() + PARAPHRASES.len());
    for (id, v) in ids.iter().zip(&vectors) {
        let v = v.as_ref().unwrap();
        assert_eq!(v.len(), 384, "{id}");
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{id}: |v| = {norm}");
    }
}

#[test]
fn semantic_dedup_removes_paraphrases_with_their_twin_and_cosine_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    copy_model(&model("all-MiniLM-L6-v2"), &d.join("models/minilm"));
    // The model path is relative to the spec.
    write(
        &d.join("p.yaml"),
        "name: semdedup\ninput: {path: in/*.jsonl, id_field: id}\nsteps:\n  - op: semantic_dedup\n    model: models/minilm\n    eps: 0.1\noutput: {path: out, format: jsonl}\n",
    );
    let mut trees = Vec::new();
    for threads in ["1", "2"] {
        curate_ok(d, &["run", "p.yaml", "--no-registry", "--no-cache", "--threads", threads]);
        trees.push(tree(&d.join("out"), &["data", "rejects"]));
    }
    assert_eq!(trees[0], trees[1], "same output for 1 and 2 threads");
    let rejects = jsonl(&d.join("out"), "rejects");
    let mut got: Vec<(String, String)> =
        rejects.iter().map(|r| (r["id"].as_str().unwrap().to_string(), r["duplicate_of"].as_str().unwrap().to_string())).collect();
    got.sort();
    let want: Vec<(String, String)> = PARAPHRASES.iter().enumerate().map(|(i, (twin, _))| (format!("p{i}"), format!("d{twin}"))).collect();
    assert_eq!(got, want, "{rejects:?}");
    for r in &rejects {
        assert_eq!(r["reason"].as_str(), Some("semantic_dedup:near_duplicate"), "{r}");
        let c = r["cosine"].as_f64().unwrap();
        assert!((0.9..=1.0001).contains(&c), "{r}");
    }
    let kept: Vec<String> = jsonl(&d.join("out"), "data").iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(kept.len(), DOCS.len());
}

#[test]
fn model_files_key_the_cache_and_a_threshold_after_them_recomputes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    copy_model(&model("lid.176.ftz"), &d.join("lid.ftz"));
    copy_model(&model("wordllama-l2-256"), &d.join("static"));
    let spec = |threshold: &str| {
        write(
            &d.join("p.yaml"),
            format!(
                "name: models\ninput: {{path: in/*.jsonl, id_field: id}}\nsteps:\n  - op: fasttext_classify\n    model: lid.ftz\n    output: lid\n    labels: [en, de]\n  - op: embed\n    model: static\n  - op: select\n    expr: \"lid_prob >= {threshold}\"\noutput: {{path: out}}\n"
            ),
        )
    };
    spec("0.5");
    curate_ok(d, &["run", "p.yaml"]);
    let first = run_json(&d.join("out"));
    assert_eq!(first["records_out"].as_u64(), Some((DOCS.len() + PARAPHRASES.len()) as u64), "{first}");
    let batches: Vec<_> = std::fs::read_dir(d.join("out/data")).unwrap().flat_map(|f| read_parquet(&f.unwrap().path())).collect();
    assert!(strings(&batches, "lid_label").iter().all(|l| l == "en"));
    // `labels` columns hold each label's probability: English is the top one here.
    let column = |name: &str| -> Vec<f64> {
        batches.iter().flat_map(|b| b.column_by_name(name).unwrap().as_primitive::<arrow_array::types::Float64Type>().values().to_vec()).collect()
    };
    let (top, en, de) = (column("lid_prob"), column("lid_en"), column("lid_de"));
    assert!(top.iter().zip(&en).all(|(t, e)| t == e) && de.iter().zip(&en).all(|(d, e)| d < e && *d >= 0.0), "{top:?} {en:?} {de:?}");

    // A threshold change recomputes neither model step.
    spec("0.6");
    curate_ok(d, &["run", "p.yaml"]);
    let steps = cache_decisions(d, "2");
    let model_steps: Vec<_> = steps.iter().filter(|(step, _)| step.ends_with("-fasttext_classify") || step.ends_with("-embed")).collect();
    assert!(model_steps.len() == 2 && model_steps.iter().all(|(_, reused)| *reused), "{steps:?}");

    // New weights under the same path: the embedding step recomputes, the classifier before it does not.
    let weights = d.join("static/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&weights, bytes).unwrap();
    curate_ok(d, &["run", "p.yaml"]);
    let steps = cache_decisions(d, "3");
    assert!(steps.iter().any(|(step, reused)| step.ends_with("-embed") && !reused), "{steps:?}");
    assert!(steps.iter().any(|(step, reused)| step.ends_with("-fasttext_classify") && *reused), "{steps:?}");
}

#[test]
fn language_id_can_use_a_fasttext_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let texts = [
        ("en", "The committee will publish its report on renewable energy next month."),
        ("de", "Die Kommission wird ihren Bericht über erneuerbare Energien nächsten Monat veröffentlichen."),
        ("ja", "委員会は来月、再生可能エネルギーに関する報告書を公表する予定です。"),
        ("zh", "委员会将于下个月发布关于可再生能源的报告。"),
        ("ru", "Комиссия опубликует свой доклад о возобновляемой энергетике в следующем месяце."),
    ];
    let lines: String = texts.iter().enumerate().map(|(i, (_, t))| format!("{}\n", serde_json::json!({"id": format!("t{i}"), "text": t}))).collect();
    write(&d.join("in/t.jsonl"), lines);
    write(
        &d.join("p.yaml"),
        format!(
            "name: lid\ninput: {{path: in/*.jsonl, id_field: id}}\nsteps:\n  - op: language_id\n    model: {}\n    keep: [en, de, ja, zh]\noutput: {{path: out, format: jsonl}}\n",
            model("lid.176.ftz").display()
        ),
    );
    curate_ok(d, &["run", "p.yaml", "--no-registry"]);
    let kept: Vec<(String, String)> =
        jsonl(&d.join("out"), "data").iter().map(|r| (r["id"].as_str().unwrap().to_string(), r["lang"].as_str().unwrap().to_string())).collect();
    let want: Vec<(String, String)> = texts[..4].iter().enumerate().map(|(i, (l, _))| (format!("t{i}"), l.to_string())).collect();
    assert_eq!(kept, want);
    let rejects = jsonl(&d.join("out"), "rejects");
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["lang"].as_str(), Some("ru"));

    // A code the model does not know is refused before the run, naming the model's codes.
    write(&d.join("bad.yaml"), std::fs::read_to_string(d.join("p.yaml")).unwrap().replace("keep: [en, de, ja, zh]", "keep: [en, xx]"));
    let out = curate(d, &["run", "bad.yaml", "--no-registry"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("keep: `xx` is not a language the detector knows"), "{err}");
}

#[test]
fn model_score_writes_the_top_class_and_its_probability() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    write(
        &d.join("p.yaml"),
        format!(
            "name: topics\ninput: {{path: in/*.jsonl, id_field: id}}\nsteps:\n  - op: model_score\n    model: {}\n    output: topic\noutput: {{path: out, format: jsonl}}\n",
            model("categorium-en").display()
        ),
    );
    curate_ok(d, &["run", "p.yaml", "--no-registry"]);
    let rows = jsonl(&d.join("out"), "data");
    assert_eq!(rows.len(), DOCS.len() + PARAPHRASES.len());
    let labels = ["adult", "animals", "autos", "beauty", "business", "eletronics", "entertainment", "finance", "food", "games", "health", "hobbies", "home", "jobs", "law", "literature", "news", "online communities", "real estate", "reference", "science", "sensitive subject", "shopping", "society", "sports", "telecom", "travel"];
    for r in &rows {
        assert!(labels.contains(&r["topic"].as_str().unwrap()), "{r}");
        let p = r["topic_prob"].as_f64().unwrap();
        assert!(p > 1.0 / 27.0 && p <= 1.0, "{r}");
    }
}

/// A FineWeb-Edu-style regression model (one output, `problem_type: regression`) made from
/// categorium's real classifier by keeping the classifier row of `label`: its score for a text
/// is that class's logit.
fn regression_model_from_categorium(dest: &Path, label: &str) -> usize {
    use safetensors::tensor::{Dtype, SafeTensors, TensorView};
    let src = model("categorium-en");
    copy_model(&src, dest);
    let mut config: Value = serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    let k: usize = config["label2id"][label].as_u64().unwrap() as usize;
    config["id2label"] = serde_json::json!({"0": "edu_score"});
    config["label2id"] = serde_json::json!({"edu_score": 0});
    config["problem_type"] = "regression".into();
    std::fs::write(dest.join("config.json"), config.to_string()).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let weights = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = Vec::new();
    for (name, view) in weights.tensors() {
        assert_eq!(view.dtype(), Dtype::F32, "{name}");
        let (shape, data) = match name.as_str() {
            "classifier.weight" => {
                let h = view.shape()[1];
                (vec![1, h], &view.data()[k * h * 4..(k + 1) * h * 4])
            }
            "classifier.bias" => (vec![1], &view.data()[k * 4..(k + 1) * 4]),
            _ => (view.shape().to_vec(), view.data()),
        };
        tensors.push((name, TensorView::new(Dtype::F32, shape, data).unwrap()));
    }
    std::fs::write(dest.join("model.safetensors"), safetensors::tensor::serialize(tensors, None).unwrap()).unwrap();
    k
}

#[test]
fn model_score_writes_a_regression_heads_score_and_select_thresholds_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    corpus(d);
    let k = regression_model_from_categorium(&d.join("edu"), "science");
    // The reference: the classifier's own logit for that class.
    let classifier = curate_embed::Scorer::load(&model("categorium-en"), &curate_embed::EmbedOptions::default()).unwrap();
    let texts: Vec<&str> = DOCS.iter().copied().chain(PARAPHRASES.iter().map(|p| p.1)).collect();
    let logits = classifier.logits(&texts).unwrap();
    let classes = classifier.labels().len();
    let want: Vec<f64> = (0..texts.len()).map(|i| f64::from(logits[i * classes + k])).collect();
    let mut sorted = want.clone();
    sorted.sort_by(f64::total_cmp);
    let threshold = (sorted[texts.len() / 2 - 1] + sorted[texts.len() / 2]) / 2.0;
    write(
        &d.join("p.yaml"),
        format!(
            "name: edu\ninput: {{path: in/*.jsonl, id_field: id}}\nsteps:\n  - op: model_score\n    model: edu\n    output: edu\n  - op: select\n    expr: \"edu >= {threshold}\"\noutput: {{path: out, format: jsonl}}\n"
        ),
    );
    curate_ok(d, &["run", "p.yaml", "--no-registry"]);
    let rows = jsonl(&d.join("out"), "data");
    assert_eq!(rows.len(), texts.len() / 2, "half the texts score above the median");
    for r in &rows {
        let text = r["text"].as_str().unwrap();
        let i = texts.iter().position(|t| *t == text).unwrap();
        let got = r["edu"].as_f64().unwrap();
        assert!((got - want[i]).abs() <= 1e-5 * want[i].abs().max(1.0), "{}: {got} vs the classifier's logit {}", r["id"], want[i]);
        assert!(got >= threshold && r.get("edu_prob").is_none(), "{r}");
    }
}
