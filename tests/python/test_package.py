"""The Python package: pipelines, Python operators over Arrow, datasets, lineage, the client."""

import inspect
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curate
from conftest import CURATE, ROOT, output_files


def web_pipeline(*extra, name="web"):
    return curate.Pipeline(
        name,
        input=curate.read_jsonl("raw/*.jsonl", id_field="id"),
        steps=[curate.ops.length_filter(min_chars=100), *extra],
        output=curate.write_parquet(f"out/{name}"),
    )


@curate.map_batches(version="1")
def no_site3(batch: pa.RecordBatch):
    """Drops every record from site3."""
    return [not u.startswith("https://site3.") for u in batch.column("url").to_pylist()]


@curate.map_batches(version="2", writes={"n_words": "int64"})
def count_words(batch):
    return {"n_words": [len(t.split()) for t in batch.column("text").to_pylist()]}


def test_a_pipeline_built_in_python_runs_commits_and_opens_everywhere(project):
    p = web_pipeline(no_site3, count_words)
    plan = p.validate()
    assert plan["shards"] == 3 and [s["op"] for s in plan["steps"]] == ["length_filter", "no_site3", "count_words"]
    assert {"name": "n_words", "type": "Int64"} in plan["schema"]

    seen = []
    r = p.run(threads=2, progress=seen.append)
    assert (r.run, r.version, r.new_version) == (1, "web@1", True)
    assert seen[-1]["records"] == 180 and seen[-1]["bytes"] == seen[-1]["total_bytes"] > 0 and seen[-1]["tasks"] == 3
    assert r.records_in == 180 and r.records_out + r.rejected == r.records_in and r.quarantined == 0
    steps = {s["op"]: s for s in r.steps}
    assert set(steps["no_site3"]["dropped"]) == {"no_site3:mask"} and steps["no_site3"]["dropped"]["no_site3:mask"] > 0

    ds = curate.dataset("web@latest")
    assert ds.reference == "web@1" and len(ds) == r.records_out
    table = ds.to_arrow()
    assert table.num_rows == r.records_out
    assert not any(u.startswith("https://site3.") for u in table.column("url").to_pylist())
    texts = table.column("text").to_pylist()
    assert table.column("n_words").to_pylist() == [len(t.split()) for t in texts]
    assert all(len(t) >= 100 for t in texts)
    assert sum(b.num_rows for b in ds.iter_batches(batch_size=7)) == r.records_out

    df = ds.to_pandas(columns=["id", "n_words"])
    assert list(df.columns) == ["id", "n_words"] and len(df) == r.records_out
    assert ds.to_polars().height == r.records_out

    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HOME"] = str(project / "hf")
    hf = ds.to_hf()
    assert len(hf) == r.records_out and hf[0]["id"] == table.column("id")[0].as_py()


def test_yaml_pipeline_takes_a_python_step_and_keeps_yaml_errors_located(project):
    (project / "p.yaml").write_text(
        "name: y\ninput:\n  path: raw/*.jsonl\n  id_field: id\nsteps:\n  - op: length_filter\n    min_chars: 100\n"
        "output:\n  path: out/y\n"
    )
    p = curate.Pipeline.from_yaml("p.yaml")
    assert p.steps == [curate.ops.length_filter(min_chars=100)]
    p.steps.append(no_site3)

    def plain(batch):  # an undecorated function is a step too (version 1)
        return batch

    p.steps.append(plain)
    r = p.run()
    assert r.version == "y@1" and [s["op"] for s in r.steps] == ["length_filter", "no_site3", "plain"]

    (project / "bad.yaml").write_text(
        "name: y\ninput:\n  path: raw/*.jsonl\nsteps:\n  - op: length_filter\n    min_char: 100\noutput:\n  path: out/y\n"
    )
    with pytest.raises(curate.SpecError) as e:
        curate.Pipeline.from_yaml("bad.yaml").validate()
    assert "bad.yaml:6" in str(e.value) and "min_char" in str(e.value) and "did you mean `min_chars`" in str(e.value)

    with pytest.raises(curate.SpecError, match="langauge_id"):
        web_pipeline(curate.Step("langauge_id")).validate()
    with pytest.raises(curate.SpecError, match="input.path"):
        curate.Pipeline("x", input=curate.read_jsonl("nowhere/*.jsonl"), output=curate.write_parquet("out/x")).validate()


def test_every_builtin_operator_is_in_ops_with_its_parameters():
    names = [op["name"] for op in curate.ops.OPERATORS]
    assert {"length_filter", "gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality", "minhash_dedup",
            "language_id", "pii_redact"} <= set(names)
    for op in curate.ops.OPERATORS:
        fn = getattr(curate.ops, op["name"])
        assert [p.name for p in inspect.signature(fn).parameters.values()] == [p["name"] for p in op["params"]]
        assert op["summary"] in fn.__doc__
    assert curate.ops.length_filter(min_chars=5).to_spec() == {"op": "length_filter", "min_chars": 5}
    with pytest.raises(TypeError, match="min_char"):
        curate.ops.length_filter(min_char=5)
    with pytest.raises(AttributeError, match="no operator"):
        curate.ops.no_such_op
    # Type checkers read the committed stub: it must list what the engine has.
    stub = (ROOT / "python/curate/ops.pyi").read_text()
    assert stub == curate.ops._stub(), "regenerate: python -c 'import curate.ops as o; print(o._stub(), end=\"\")' > python/curate/ops.pyi"


def test_a_raising_function_quarantines_its_batch_and_the_run_goes_on(project):
    @curate.map_batches
    def fragile(batch):
        ids = batch.column("id").to_pylist()
        if "doc-00070" in ids:
            raise ValueError("cannot score doc-00070")
        return batch

    r = web_pipeline(fragile).run()
    assert r.version == "web@1"
    step = [s for s in r.steps if s["op"] == "fragile"][0]
    assert step["failed"] > 0 and r.quarantined == step["failed"]
    entries = [json.loads(l) for f in sorted((project / "out/web/quarantine").glob("*.jsonl")) for l in f.read_text().splitlines()]
    assert len(entries) == r.quarantined
    assert all("ValueError: cannot score doc-00070" in e["error"] and "step 1 (fragile)" in e["error"] for e in entries)
    ids = {json.loads(e["raw"])["id"] for e in entries}
    assert "doc-00070" in ids and all(f"`{i}`" in " ".join(x["error"] for x in entries) for i in ids)
    assert all(e["file"].startswith("raw/part-1") for e in entries)
    kept = curate.dataset("web@1").to_arrow().column("id").to_pylist()
    assert not ids & set(kept)
    assert r.records_out + r.rejected + r.quarantined == r.records_in


def test_a_function_that_breaks_the_contract_fails_the_run_clearly(project):
    @curate.map_batches
    def undeclared(batch):
        return {"score": [1.0] * batch.num_rows}

    with pytest.raises(curate.RunError, match="column `score`.*declare it"):
        web_pipeline(undeclared).run()

    @curate.map_batches
    def short_mask(batch):
        return [True]

    with pytest.raises(curate.RunError, match="returned 1 values for a batch of"):
        web_pipeline(short_mask, name="w2").run()


def test_the_cache_key_follows_the_functions_version_and_source(project):
    def computed(r, op):
        return [o for t in r.report["task_cache"] for o in t if o["op"] == op and not o["reused"]]

    first = web_pipeline(count_words).run()
    assert len(computed(first, "count_words")) == 3
    again = web_pipeline(count_words).run()
    assert computed(again, "count_words") == [] and again.new_version is False

    bumped = curate.map_batches(count_words.func, name="count_words", version="3", writes={"n_words": "int64"})
    assert len(computed(web_pipeline(bumped).run(), "count_words")) == 3

    def other(batch):
        return {"n_words": [len(t) for t in batch.column("text").to_pylist()]}

    changed = curate.map_batches(other, name="count_words", version="3", writes={"n_words": "int64"})
    r = web_pipeline(changed).run()
    assert len(computed(r, "count_words")) == 3 and r.new_version


def test_batches_cross_the_boundary_without_copies(project):
    batch = pa.RecordBatch.from_pydict({"id": ["a", "b"], "text": ["x" * 100, "y" * 50], "n": [1, 2]})
    ours = [b.address for c in batch.columns for b in c.buffers() if b is not None]
    assert curate._native.buffer_addresses(batch) == ours

    # Inside a run: what one Python step returns reaches the next through the engine with
    # the same buffers.
    seen = {}

    @curate.map_batches(writes={"copy": "string"})
    def first(batch):
        col = pa.array(batch.column("text").to_pylist())
        seen.setdefault("first", []).append(col.buffers()[2].address)
        return {"copy": col}

    @curate.map_batches
    def second(batch):
        seen.setdefault("second", []).append(batch.column("copy").buffers()[2].address)
        return batch

    web_pipeline(first, second).run(threads=1)
    assert seen["first"] and seen["second"] == seen["first"]


def test_explain_and_forget_from_python(project):
    r = web_pipeline(no_site3).run()
    kept = curate.dataset("web@1").to_arrow().column("id").to_pylist()
    e = curate.explain(kept[0])
    ops = [o["name"] for o in e["occurrences"][0]["operators"]]
    assert ops == ["length_filter", "no_site3"] and e["versions"][0]["version"] == "web@1"
    assert curate.explain("no-such-record") is None

    done = curate.forget([kept[0]], reason="user request", actor="tester")
    assert done["versions"] == [{"version": "web@2", "removed": 1}] and done["unknown"] == []
    assert kept[0] not in curate.dataset("web@latest").to_arrow().column("id").to_pylist()
    assert r.run == 1


def test_two_python_threads_run_pipelines_at_once(project):
    shutil.copytree(project / "raw", project / "raw2")
    results, errors = {}, []

    def go(name, path):
        try:
            p = curate.Pipeline(name, input=curate.read_jsonl(path, id_field="id"), steps=[curate.ops.gopher_repetition()],
                                output=curate.write_parquet(f"out/{name}"))
            results[name] = p.run(threads=1)
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=go, args=("a", "raw/*.jsonl")), threading.Thread(target=go, args=("b", "raw2/*.jsonl"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results["a"].records_out == results["b"].records_out > 0


def test_the_client_drives_curate_serve(project):
    env = dict(os.environ, CURATE_HOME=str(project / ".curate"))
    token = subprocess.run([CURATE, "tokens", "create", "--scope", "admin", "--name", "py"], env=env, cwd=project,
                           check=True, capture_output=True, text=True).stdout.split()[-1]
    server = subprocess.Popen([CURATE, "serve", "--listen", "127.0.0.1:0", "--workers", "1"], env=env, cwd=project,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for line in server.stdout:
            if "http://" in line:
                url = "http://" + line.split("http://")[1].split()[0].rstrip("/")
                break
        assert url, "curate serve printed no address"
        c = curate.Client(url, token)
        spec = "name: s\ninput: {path: raw/*.jsonl, id_field: id}\nsteps: [{op: length_filter, min_chars: 100}]\noutput: {path: out/s}\n"
        run = c.submit(spec=spec, idempotency_key="k1")
        assert c.submit(spec=spec, idempotency_key="k1")["id"] == run["id"]
        done = c.wait(run["id"], timeout=120)
        assert done["state"] == "succeeded" and done["version"] == "s@1"
        kept = curate.dataset("s@1").to_arrow().column("id").to_pylist()
        assert c.explain(kept[0])["record"] == kept[0]
        with pytest.raises(curate.ApiError) as e:
            curate.Client(url, "wrong-token").runs()
        assert e.value.status == 401
        with pytest.raises(curate.ApiError) as e:
            c.submit(spec="name: s\nsteps: []\n")
        assert e.value.status in (400, 422) and e.value.problem.get("detail")
    finally:
        server.kill()
        server.wait()


def test_the_readme_python_example_runs(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = dict(os.environ, CURATE_HOME=str(tmp_path / ".curate"))
    out = subprocess.run([sys.executable, "examples/python/web.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "655 records in, 395 out, 260 rejected -> web-py@1" in out.stdout
    assert "no_tech_blogs       643 ->  606  {'no_tech_blogs:mask': 37}" in out.stdout
    assert "doc-00000 went through ['html_extract', 'no_tech_blogs', 'language_id'" in out.stdout


def test_a_progress_callback_that_raises_cancels_and_resume_finishes(project):
    @curate.map_batches
    def slow(batch):
        time.sleep(0.4)
        return batch

    def stop(progress):
        raise KeyboardInterrupt("stop")  # what Ctrl-C raises in the thread that runs the pipeline

    with pytest.raises(KeyboardInterrupt):
        web_pipeline(slow).run(threads=1, progress=stop)
    done = [json.loads(p.read_text()) for p in (project / "out/web/_state/tasks").glob("*.json")]
    assert len(done) < 3, "cancelled before every task committed"
    r = web_pipeline(slow).run(threads=1, resume=True)
    assert r.version == "web@1" and r.report["tasks_resumed"] == len(done)
