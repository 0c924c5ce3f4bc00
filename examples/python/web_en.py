"""The bundled English web pipeline built in Python, with a step of our own over Arrow
batches; run from the repository root: `python examples/python/web_en.py`."""

import pyarrow.compute as pc

import curate


@curate.map_batches(version="1")
def no_forums(batch):
    """Drops pages under a /forum/ path (keep mask)."""
    return pc.invert(pc.match_substring(batch.column("url"), "/forum/"))


p = curate.Pipeline(
    "web-en-py",
    input=curate.read_jsonl("examples/web-en/data/*.jsonl*", id_field="id"),
    steps=[curate.ops.length_filter(min_chars=200), curate.ops.gopher_quality(), no_forums],
    output=curate.write_parquet("out/web-en-py"),
)
print(p.validate()["steps"])
result = p.run(threads=2)
print(f"{result.records_in} records in, {result.records_out} out, {result.rejected} rejected -> {result.version}")
ds = curate.dataset(f"{p.name}@latest")
table = ds.to_arrow()
print(ds, table.schema.names)
print(curate.explain(table["id"][0].as_py())["occurrences"][0]["operators"])
