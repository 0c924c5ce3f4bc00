//! A BERT encoder's forward pass on the CPU over a group of sequences, packed without padding.
//!
//! The products that mix features (query/key/value, output, feed-forward) run on every token of
//! the group at once; attention runs per sequence, so no padding or attention mask is needed.
//! gemm computes each output row from that row alone, with the same blocking of the inner
//! dimension whatever the number of rows, so a text's vector does not depend on which texts
//! share its group (checked bit for bit by the tests): outputs are the same for any batch,
//! thread or shard count. Matrix products go to `gemm` (AVX-512 / AVX2 kernels chosen at run
//! time).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::ModelError;
use crate::files::{ModelDir, Tensors};

/// The fields of a Hugging Face `config.json` a BERT encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    #[serde(default)]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f32,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_position")]
    pub position_embedding_type: String,
    /// Class names by index, for classification heads.
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
    #[serde(default)]
    pub problem_type: Option<String>,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f32 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_position() -> String {
    "absolute".into()
}

impl BertConfig {
    pub(crate) fn load(dir: &mut ModelDir) -> Result<Self, ModelError> {
        let config: BertConfig = dir.json("config.json")?;
        let path = dir.path("config.json");
        if config.model_type != "bert" {
            return Err(ModelError::invalid(path, format!("model_type `{}` is not supported; BERT-family encoders (model_type `bert`) are", config.model_type)));
        }
        if config.position_embedding_type != "absolute" {
            return Err(ModelError::invalid(path, format!("position_embedding_type `{}` is not supported, only `absolute`", config.position_embedding_type)));
        }
        if !matches!(config.hidden_act.as_str(), "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu") {
            return Err(ModelError::invalid(path, format!("hidden_act `{}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu are)", config.hidden_act)));
        }
        if config.num_attention_heads == 0 || config.hidden_size % config.num_attention_heads != 0 {
            return Err(ModelError::invalid(path, "hidden_size must be a multiple of num_attention_heads"));
        }
        Ok(config)
    }
}

/// `y = x W^T + b` for a weight PyTorch stores as `[out, in]`, kept here transposed
/// (`[in, out]`): gemm then packs it with contiguous copies instead of strided gathers.
pub(crate) struct Linear {
    weight_t: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Linear {
    pub(crate) fn load(t: &mut Tensors, name: &str, inputs: usize, outputs: usize) -> Result<Self, ModelError> {
        let weight = t.take(&format!("{name}.weight"), &[outputs, inputs])?;
        let bias = t.take(&format!("{name}.bias"), &[outputs])?;
        let mut weight_t = vec![0.0f32; inputs * outputs];
        for (o, row) in weight.chunks_exact(inputs).enumerate() {
            for (i, w) in row.iter().enumerate() {
                weight_t[i * outputs + o] = *w;
            }
        }
        Ok(Linear { weight_t, bias, inputs, outputs })
    }

    /// Stacks layers with the same input into one (query, key and value in one product).
    fn concat(parts: Vec<Linear>) -> Linear {
        let inputs = parts[0].inputs;
        let outputs = parts.iter().map(|p| p.outputs).sum();
        let mut weight_t = Vec::with_capacity(inputs * outputs);
        for i in 0..inputs {
            for p in &parts {
                weight_t.extend_from_slice(&p.weight_t[i * p.outputs..(i + 1) * p.outputs]);
            }
        }
        let bias = parts.iter().flat_map(|p| p.bias.iter().copied()).collect();
        Linear { weight_t, bias, inputs, outputs }
    }

    /// Applies the layer to `rows` rows of `x`, writing `y` (`rows * outputs`).
    pub(crate) fn forward(&self, x: &[f32], rows: usize, y: &mut Vec<f32>) {
        debug_assert_eq!(x.len(), rows * self.inputs);
        y.clear();
        for _ in 0..rows {
            y.extend_from_slice(&self.bias);
        }
        // SAFETY: the three buffers hold `rows x outputs`, `rows x inputs` and
        // `inputs x outputs` f32s, which is what the strides below address.
        unsafe {
            gemm::gemm(
                rows,
                self.outputs,
                self.inputs,
                y.as_mut_ptr(),
                1,
                self.outputs as isize,
                true,
                x.as_ptr(),
                1,
                self.inputs as isize,
                self.weight_t.as_ptr(),
                1,
                self.outputs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// Layer normalisation over the last dimension.
pub(crate) struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(t: &mut Tensors, name: &str, size: usize, eps: f32) -> Result<Self, ModelError> {
        // Checkpoints converted from TensorFlow name the parameters gamma and beta.
        let (w, b) = if t.shape(&format!("{name}.gamma")).is_some() { ("gamma", "beta") } else { ("weight", "bias") };
        Ok(LayerNorm { weight: t.take(&format!("{name}.{w}"), &[size])?, bias: t.take(&format!("{name}.{b}"), &[size])?, eps })
    }

    #[inline(always)]
    fn forward(&self, x: &mut [f32]) {
        let n = self.weight.len();
        for row in x.chunks_exact_mut(n) {
            let mean = row.iter().sum::<f32>() / n as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *v = (*v - mean) * inv * w + b;
            }
        }
    }
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// The activation between the two feed-forward products.
#[derive(Clone, Copy)]
enum Activation {
    /// `x * Phi(x)` with the exact normal CDF (PyTorch's default GELU).
    Gelu,
    /// The tanh approximation of GELU.
    GeluTanh,
    Relu,
}

impl Activation {
    #[inline(always)]
    fn apply(self, x: &mut [f32]) {
        match self {
            Activation::Gelu => x.iter_mut().for_each(|v| *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2))),
            Activation::GeluTanh => {
                let c = (2.0 / std::f32::consts::PI).sqrt();
                x.iter_mut().for_each(|v| *v = 0.5 * *v * (1.0 + (c * (*v + 0.044715 * *v * *v * *v)).tanh()))
            }
            Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
    }
}

/// A BERT encoder: embeddings and transformer layers, no head.
pub(crate) struct Bert {
    pub config: BertConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    activation: Activation,
}

/// Reusable buffers of one forward pass.
#[derive(Default)]
pub(crate) struct Scratch {
    hidden: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    scores: Vec<f32>,
    keys_t: Vec<f32>,
    projected: Vec<f32>,
    intermediate: Vec<f32>,
}

impl Bert {
    /// Loads the encoder; `prefix` is `""` or `"bert."` (weights of a model with a head).
    pub(crate) fn load(config: BertConfig, t: &mut Tensors, prefix: &str) -> Result<Self, ModelError> {
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let e = format!("{prefix}embeddings");
        let word = t.take(&format!("{e}.word_embeddings.weight"), &[config.vocab_size, h])?;
        let position = t.take(&format!("{e}.position_embeddings.weight"), &[config.max_position_embeddings, h])?;
        let token_type = t.take(&format!("{e}.token_type_embeddings.weight"), &[config.type_vocab_size, h])?;
        let embedding_norm = LayerNorm::load(t, &format!("{e}.LayerNorm"), h, eps)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = format!("{prefix}encoder.layer.{i}");
            let qkv = Linear::concat(vec![
                Linear::load(t, &format!("{l}.attention.self.query"), h, h)?,
                Linear::load(t, &format!("{l}.attention.self.key"), h, h)?,
                Linear::load(t, &format!("{l}.attention.self.value"), h, h)?,
            ]);
            layers.push(Layer {
                qkv,
                attention_out: Linear::load(t, &format!("{l}.attention.output.dense"), h, h)?,
                attention_norm: LayerNorm::load(t, &format!("{l}.attention.output.LayerNorm"), h, eps)?,
                intermediate: Linear::load(t, &format!("{l}.intermediate.dense"), h, config.intermediate_size)?,
                output: Linear::load(t, &format!("{l}.output.dense"), config.intermediate_size, h)?,
                output_norm: LayerNorm::load(t, &format!("{l}.output.LayerNorm"), h, eps)?,
            });
        }
        let activation = match config.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            _ => Activation::GeluTanh,
        };
        Ok(Bert { config, word, position, token_type, embedding_norm, layers, activation })
    }

    /// The last hidden states of `seqs` (each truncated to the position table), stacked:
    /// `sum(len) x hidden_size` in `scratch`. The products that mix features run on all rows
    /// at once; attention runs per sequence, so no padding or mask is needed.
    pub(crate) fn forward<'s>(&self, seqs: &[&[u32]], scratch: &'s mut Scratch) -> &'s [f32] {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { self.forward_avx2(seqs, scratch) };
        }
        self.forward_any(seqs, scratch)
    }

    /// `forward` with the element-wise loops (normalisation, activation, softmax) compiled
    /// for AVX2 and FMA; the products are gemm's, dispatched at run time either way.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2<'s>(&self, seqs: &[&[u32]], scratch: &'s mut Scratch) -> &'s [f32] {
        self.forward_any(seqs, scratch)
    }

    #[inline(always)]
    fn forward_any<'s>(&self, seqs: &[&[u32]], scratch: &'s mut Scratch) -> &'s [f32] {
        let h = self.config.hidden_size;
        let heads = self.config.num_attention_heads;
        let d = h / heads;
        let s = scratch;
        s.hidden.clear();
        let mut spans = Vec::with_capacity(seqs.len());
        for ids in seqs {
            let len = ids.len().min(self.config.max_position_embeddings);
            spans.push((s.hidden.len() / h, len));
            for (pos, &id) in ids[..len].iter().enumerate() {
                // Ids come from the model's own tokenizer; an out-of-range id maps to 0
                // ([PAD]) rather than reading past the table.
                let id = if (id as usize) < self.config.vocab_size { id as usize } else { 0 };
                let w = &self.word[id * h..(id + 1) * h];
                let p = &self.position[pos * h..(pos + 1) * h];
                let t = &self.token_type[..h];
                s.hidden.extend(w.iter().zip(p).zip(t).map(|((w, p), t)| w + p + t));
            }
        }
        let rows = s.hidden.len() / h;
        self.embedding_norm.forward(&mut s.hidden);
        let scale = 1.0 / (d as f32).sqrt();
        for layer in &self.layers {
            layer.qkv.forward(&s.hidden, rows, &mut s.qkv);
            s.context.clear();
            s.context.resize(rows * h, 0.0);
            for &(first, len) in &spans {
                let qkv = &s.qkv[first * 3 * h..(first + len) * 3 * h];
                s.scores.resize(len * len, 0.0);
                s.keys_t.resize(d * len, 0.0);
                for head in 0..heads {
                    // This head's keys as a contiguous d x len matrix.
                    for (t, row) in qkv.chunks_exact(3 * h).enumerate() {
                        for (j, k) in row[h + head * d..h + (head + 1) * d].iter().enumerate() {
                            s.keys_t[j * len + t] = *k;
                        }
                    }
                    let q = qkv[head * d..].as_ptr();
                    let v = qkv[2 * h + head * d..].as_ptr();
                    // SAFETY: q and v address `len` rows of stride 3h inside this sequence's
                    // `qkv` (len x 3h); `keys_t` is d x len, `scores` len x len, and the
                    // context rows start at `first` in `context` (rows x h).
                    unsafe {
                        gemm::gemm(
                            len, len, d,
                            s.scores.as_mut_ptr(), 1, len as isize, false,
                            q, 1, 3 * h as isize,
                            s.keys_t.as_ptr(), 1, len as isize,
                            0.0, scale, false, false, false, gemm::Parallelism::None,
                        );
                    }
                    for row in s.scores.chunks_exact_mut(len) {
                        softmax(row);
                    }
                    unsafe {
                        gemm::gemm(
                            len, d, len,
                            s.context[first * h + head * d..].as_mut_ptr(), 1, h as isize, false,
                            s.scores.as_ptr(), 1, len as isize,
                            v, 1, 3 * h as isize,
                            0.0, 1.0, false, false, false, gemm::Parallelism::None,
                        );
                    }
                }
            }
            layer.attention_out.forward(&s.context, rows, &mut s.projected);
            add(&mut s.hidden, &s.projected);
            layer.attention_norm.forward(&mut s.hidden);
            layer.intermediate.forward(&s.hidden, rows, &mut s.intermediate);
            self.activation.apply(&mut s.intermediate);
            layer.output.forward(&s.intermediate, rows, &mut s.projected);
            add(&mut s.hidden, &s.projected);
            layer.output_norm.forward(&mut s.hidden);
        }
        &s.hidden
    }
}

/// The error function, Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, under
/// float32 rounding of the GELU it feeds), several times faster than libm's `erff`.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

#[inline(always)]
fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

#[inline(always)]
fn softmax(row: &mut [f32]) {
    let max = lanes(row, f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
    row.iter_mut().for_each(|v| *v = exp(*v - max));
    let inv = 1.0 / lanes(row, 0.0, |a, b| a + b);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// `row` folded with `f` in eight interleaved lanes, then the lanes in order: a reduction the
/// compiler can keep in one vector register (a single running value would be a chain of
/// scalar operations). The order is fixed, so results do not vary between runs.
#[inline(always)]
fn lanes(row: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = f(*a, v);
        }
    }
    let tail = chunks.remainder().iter().fold(init, |a, &v| f(a, v));
    acc.into_iter().fold(tail, &f)
}

/// `e^x` for `x <= 0` (softmax after its maximum, erf's `e^(-a^2)`), within 2 ulp of libm's
/// `expf`, written so that loops over it compile to vector code (libm's is a call per
/// element, a tenth of the encoder's time). Below -87 it returns about 1e-38 instead of 0 or
/// a subnormal, which no sum of exponentials it feeds can tell apart.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Cephes' expf: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for exact n ln2), e^r
    // by a degree-7 polynomial, 2^n built in the exponent bits.
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer.
    let x = x.max(-87.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let scale = f32::from_bits(((t.to_bits() as i32 - ROUND.to_bits() as i32 + 127) << 23) as u32);
    e_r * scale
}

/// The weight prefix of the encoder in `t`: `""` for a bare encoder, `"bert."` inside a
/// model with a head.
pub(crate) fn prefix(t: &Tensors) -> Result<&'static str, ModelError> {
    match t.first_of(&["embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight"]) {
        Some("embeddings.word_embeddings.weight") => Ok(""),
        Some(_) => Ok("bert."),
        None => Err(ModelError::invalid(t.path(), "no BERT embeddings (`embeddings.word_embeddings.weight`) in this file")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm_over_its_range() {
        let mut worst = 0.0f64;
        for i in 0..=8_700_000 {
            let x = -(i as f32) * 1e-5;
            let (got, want) = (f64::from(exp(x)), f64::from(x.exp()));
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst <= 2.0 * f64::from(f32::EPSILON), "largest relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1e4) > 0.0 && exp(-1e4) < 1e-37 && exp(f32::NEG_INFINITY) < 1e-37);
    }
}
