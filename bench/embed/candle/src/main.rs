//! Embeds a JSONL file of `{"id", "text"}` rows with candle's BERT as sentence-transformers does
//! (texts sorted by length, batches of 32 padded to the longest, truncation at 256 tokens, mean
//! pooling over the attention mask, L2 normalisation).
//!
//! usage: candle-embed-bench MODEL_DIR PARAGRAPHS.jsonl OUT_PREFIX
//!
//! Writes OUT_PREFIX.f32 (vectors, row-major, input order) and OUT_PREFIX.json (docs/s), the
//! same files as curate-embed-bench. Threads: RAYON_NUM_THREADS.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, input, out] = args.as_slice() else {
        return Err("usage: candle-embed-bench MODEL_DIR PARAGRAPHS.jsonl OUT_PREFIX".into());
    };
    let dir = Path::new(model);
    let device = Device::Cpu;
    let config: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    // SAFETY: the weights file is not modified while mapped (a benchmark's own model copy).
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &device)?
    };
    let bert = BertModel::load(vb, &config)?;
    let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| e.to_string())?;
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: 256, ..Default::default() }))
        .map_err(|e| e.to_string())?;
    tokenizer.with_padding(Some(PaddingParams::default()));

    let mut texts = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(input)?).lines() {
        let row: serde_json::Value = serde_json::from_str(&line?)?;
        texts.push(row["text"].as_str().unwrap_or_default().to_string());
    }
    let t = Instant::now();
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
    let mut vectors = vec![Vec::new(); texts.len()];
    for batch in order.chunks(32) {
        let inputs: Vec<&str> = batch.iter().map(|&i| texts[i].as_str()).collect();
        let enc = tokenizer.encode_batch(inputs, true).map_err(|e| e.to_string())?;
        let ids: Vec<Tensor> = enc.iter().map(|e| Tensor::new(e.get_ids(), &device)).collect::<Result<_, _>>()?;
        let mask: Vec<Tensor> = enc
            .iter()
            .map(|e| Tensor::new(e.get_attention_mask(), &device))
            .collect::<Result<_, _>>()?;
        let ids = Tensor::stack(&ids, 0)?;
        let mask = Tensor::stack(&mask, 0)?;
        let types = ids.zeros_like()?;
        let hidden = bert.forward(&ids, &types, Some(&mask))?;
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let pooled = hidden.broadcast_mul(&m)?.sum(1)?.broadcast_div(&m.sum(1)?)?;
        let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?;
        let unit = pooled.broadcast_div(&norm)?;
        for (row, &i) in unit.to_vec2::<f32>()?.into_iter().zip(batch) {
            vectors[i] = row;
        }
    }
    let seconds = t.elapsed().as_secs_f64();
    let mut f = std::io::BufWriter::new(std::fs::File::create(format!("{out}.f32"))?);
    for x in vectors.iter().flatten() {
        f.write_all(&x.to_le_bytes())?;
    }
    f.flush()?;
    let report = serde_json::json!({
        "library": "candle",
        "docs": texts.len(),
        "seconds": seconds,
        "docs_per_s": texts.len() as f64 / seconds,
    });
    std::fs::write(format!("{out}.json"), serde_json::to_string_pretty(&report)?)?;
    println!("{report}");
    Ok(())
}
