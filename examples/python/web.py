"""The bundled web pipeline (examples/web/pipeline.yaml) from Python, with a step of our own
over Arrow batches, then the version opened as Arrow and a record explained.
Run from the repository root: `python examples/python/web.py`."""

import pyarrow.compute as pc

import curate


@curate.map_batches(version="1")
def no_tech_blogs(batch):
    """Drops pages of one site we do not want (a keep mask over the url column)."""
    return pc.invert(pc.match_substring(batch.column("url"), "stackandheap.dev"))


p = curate.Pipeline.from_yaml("examples/web/pipeline.yaml")
p.name, p.output["path"] = "web-py", "out/web-py"
p.steps.insert(1, no_tech_blogs)  # right after html_extract: steps is a plain list
print("steps:", [s["op"] for s in p.validate()["steps"]])

result = p.run()
print(f"{result.records_in} records in, {result.records_out} out, {result.rejected} rejected -> {result.version}")
for s in result.steps:
    print(f"  {s['op']:<18} {s['in']:>4} -> {s['out']:>4}  {s['dropped']}")

ds = curate.dataset("web-py@latest")
table = ds.to_arrow(columns=["id", "url", "text", "lang"])
print(ds, table.num_rows, "rows")
record = table.column("id")[0].as_py()
print(record, "went through", [op["name"] for op in curate.explain(record)["occurrences"][0]["operators"]])
