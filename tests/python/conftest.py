"""Shared fixtures: a project directory with a small web corpus, its own registry."""

import json
import os
import pathlib
import random

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
CURATE = os.environ.get("CURATE_BIN", str(TARGET / "debug" / "curate"))

WORDS = ("data model training text quality filter corpus record source web page token science world public "
         "information version group number set time people dataset curate").split()
# Frequent enough for the Gopher quality rule (at least two of them per document).
STOP = "the and of to that with have be".split()


def write_corpus(directory: pathlib.Path, files: int = 3, per_file: int = 60, seed: int = 7) -> None:
    """JSONL files of documents of varied length, some repeated across files (for dedup)."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    def sentence():
        return " ".join(rng.choice(STOP) if rng.random() < 0.3 else rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."

    shared = ["\n".join(sentence() for _ in range(10)) for _ in range(5)]
    n = 0
    for f in range(files):
        with open(directory / f"part-{f}.jsonl", "w") as out:
            for i in range(per_file):
                if i % 10 == 0:
                    text = shared[(i // 10) % len(shared)]
                else:
                    text = "\n".join(sentence() for _ in range(rng.choice([1, 3, 8, 20])))
                out.write(json.dumps({"id": f"doc-{n:05d}", "url": f"https://site{n % 7}.example.org/{n}", "text": text}) + "\n")
                n += 1


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A working directory holding `raw/` and its own `.curate` registry."""
    write_corpus(tmp_path / "raw")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CURATE_HOME", str(tmp_path / ".curate"))
    return tmp_path


def output_files(out: pathlib.Path) -> dict:
    """Every data, rejects, quarantine and lineage file of an output, by relative path."""
    files = {}
    for sub in ("data", "rejects", "quarantine", "_lineage"):
        for p in sorted((out / sub).rglob("*")):
            if p.is_file():
                files[str(p.relative_to(out))] = p.read_bytes()
    return files
