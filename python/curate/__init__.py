"""curate: versioned, explainable training datasets, with the Rust engine underneath.

Build a pipeline (or load a YAML spec), add Python steps over Arrow batches, run it here or
on Ray, open any dataset version as Arrow, pandas, polars or Hugging Face datasets, and ask
where a record came from::

    import curate
    p = curate.Pipeline("web-en", input=curate.read_jsonl("raw/*.jsonl.zst", id_field="id"),
                        steps=[curate.ops.length_filter(min_chars=200)],
                        output=curate.write_parquet("out/web-en"))
    result = p.run()
    table = curate.dataset("web-en@latest").to_arrow()
"""

from . import ops
from ._native import CurateError, RegistryError, RunError, SpecError
from .client import ApiError, Client
from .dataset import Dataset, dataset, explain, forget
from .pipeline import (Input, Output, Pipeline, RunResult, Step, read_dataset, read_jsonl, read_parquet, write_jsonl,
                       write_parquet)
from .udf import MapBatches, map_batches

__all__ = [
    "ApiError", "Client", "CurateError", "Dataset", "Input", "MapBatches", "Output", "Pipeline", "RegistryError",
    "RunError", "RunResult", "SpecError", "Step", "dataset", "explain", "forget", "map_batches", "ops", "read_dataset",
    "read_jsonl", "read_parquet", "write_jsonl", "write_parquet",
]
