"""curate's outputs open in the tools users train with: pyarrow and HF datasets."""

import json
import os
import pathlib
import shutil
import subprocess

import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The binary `cargo build` put where cargo builds: CARGO_TARGET_DIR when set, as cargo does.
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
CURATE = os.environ.get("CURATE_BIN", str(ROOT / TARGET / "debug" / "curate"))


def run_example(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    subprocess.run([CURATE, "run", "examples/web-en/pipeline.yaml"], cwd=tmp_path, check=True, capture_output=True)
    return tmp_path / "out" / "web-en"


def test_pyarrow_reads_data_and_rejects(tmp_path):
    out = run_example(tmp_path)
    data = pq.read_table(sorted((out / "data").glob("*.parquet")))
    assert data.num_rows == 126
    assert data.column_names == ["id", "text", "url", "meta", "lang_hint", "_source", "_extra"]
    assert all(len(t) >= 200 for t in data.column("text").to_pylist())
    # Nested input values are kept as JSON text, so nothing is lost.
    assert json.loads(data.column("meta")[0].as_py())["crawl"] in ("2026-10", "2026-11")
    rejects = pq.read_table(sorted((out / "rejects").glob("*.parquet")))
    assert rejects.num_rows == 74
    assert set(rejects.column("reason").to_pylist()) == {"length_filter:min_chars"}
    run = json.loads((out / "run.json").read_text())
    assert run["records_out"] == data.num_rows


def test_hf_datasets_loads_data(tmp_path):
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HOME"] = str(tmp_path / "hf")
    import datasets

    out = run_example(tmp_path)
    files = [str(p) for p in sorted((out / "data").glob("*.parquet"))]
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    assert len(ds) == 126
    assert ds[0]["id"].startswith("doc-")
    assert ds[0]["_source"]["file"] == "examples/web-en/data/part-0.jsonl"
