"""Runs on Ray: each task runs the Rust engine inside a Ray task; the output is
byte-identical to a local run whatever the number of Ray workers, and a Ray task whose
process dies is retried."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import ray

import curate
from conftest import CURATE, output_files, write_corpus


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # Workers import what the driver imports (this directory's modules included).
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}})
    yield
    ray.shutdown()


@curate.map_batches(version="1", writes={"n_lines": "int64"})
def count_lines(batch):
    return {"n_lines": [t.count("\n") + 1 for t in batch.column("text").to_pylist()]}


def chain(raw, name="chain", *extra):
    return curate.Pipeline(
        name,
        input=curate.read_jsonl(f"{raw}/*.jsonl", id_field="id"),
        steps=[curate.ops.gopher_repetition(), curate.ops.gopher_quality(), curate.ops.c4_quality(),
               curate.ops.fineweb_quality(), count_lines, curate.ops.minhash_dedup(), *extra],
        output=curate.write_parquet(f"out/{name}"),
    )


def in_fresh_project(base: pathlib.Path, label: str, monkeypatch) -> pathlib.Path:
    d = base / label
    write_corpus(d / "raw", files=5, per_file=40)
    monkeypatch.chdir(d)
    monkeypatch.setenv("CURATE_HOME", str(d / ".curate"))
    return d


def test_ray_output_is_byte_identical_to_local_for_1_2_4_workers(tmp_path, monkeypatch):
    d = in_fresh_project(tmp_path, "local", monkeypatch)
    local = chain("raw").run(threads=2)
    assert local.version == "chain@1" and local.records_out > 0
    steps = {s["op"]: s for s in local.steps}
    assert sum(steps["minhash_dedup"]["dropped"].values()) > 0, "the corpus repeats documents across files"
    expected = output_files(d / "out/chain")
    assert any(k.startswith("data/") for k in expected)

    for workers in (1, 2, 4):
        d = in_fresh_project(tmp_path, f"ray{workers}", monkeypatch)
        r = chain("raw").run(executor="ray", workers=workers)
        assert r.version == "chain@1"
        assert (r.records_in, r.records_out, r.rejected) == (local.records_in, local.records_out, local.rejected)
        assert output_files(d / "out/chain") == expected, f"{workers} Ray workers"
        assert len(curate.dataset("chain@1").to_arrow()) == local.records_out


def test_a_ray_task_whose_process_dies_is_retried(tmp_path, monkeypatch):
    d = in_fresh_project(tmp_path, "local", monkeypatch)
    chain("raw").run(threads=1)
    expected = output_files(d / "out/chain")

    d = in_fresh_project(tmp_path, "dies", monkeypatch)
    marker = d / "died-once"

    @curate.map_batches(name="count_lines", version="1", writes={"n_lines": "int64"})
    def dies_once(batch):
        if "doc-00045" in batch.column("id").to_pylist() and not marker.exists():
            marker.write_text("x")
            os._exit(1)  # the Ray worker process dies mid-task
        return count_lines(batch)

    p = chain("raw")
    p.steps[4] = dies_once
    r = p.run(executor="ray", workers=2)
    assert marker.exists() and r.version == "chain@1"
    assert output_files(d / "out/chain") == expected


def test_curate_run_executor_ray_from_the_cli(tmp_path, monkeypatch):
    d = in_fresh_project(tmp_path, "cli", monkeypatch)
    (d / "p.yaml").write_text(
        "name: cli\ninput: {path: raw/*.jsonl, id_field: id}\nsteps:\n  - {op: gopher_quality}\n  - {op: minhash_dedup}\n"
        "output: {path: out/cli}\n"
    )
    env = dict(os.environ, CURATE_PYTHON=sys.executable, RAY_ADDRESS=ray.get_runtime_context().gcs_address)
    out = subprocess.run([CURATE, "run", "--executor", "ray", "p.yaml"], cwd=d, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "committed cli@1" in out.stdout
    assert curate.dataset("cli@1").rows > 0
