"""datatrove 0.10.1 4-stage MinHash dedup of one JSONL folder, one worker per stage.

Stage 2 (buckets) must run num_buckets tasks (datatrove asserts it); with workers=1 they run
one after another in this process, so every stage uses a single core, like curate's run.
"""

import argparse
import time

from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.utils.hashing import HashConfig
from datatrove.utils.typeshelper import Languages
from datatrove.utils.word_tokenizers import WordTokenizer


class WhitespaceTokenizer(WordTokenizer):
    """str.split() on the already simplified text: what curate does after normalisation."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        raise NotImplementedError("not used by MinHash dedup")


p = argparse.ArgumentParser()
p.add_argument("--input", required=True, help="folder with the corpus .jsonl")
p.add_argument("--work", required=True, help="empty folder for intermediate files and output")
p.add_argument("--ngram", type=int, default=5)
p.add_argument("--bands", type=int, default=14)
p.add_argument("--rows", type=int, default=8)
p.add_argument(
    "--tokenizer",
    choices=["default", "whitespace"],
    default="default",
    help="default: datatrove's English tokenizer (spaCy); whitespace: str.split()",
)
a = p.parse_args()

config = MinhashConfig(
    n_grams=a.ngram,
    num_buckets=a.bands,
    hashes_per_bucket=a.rows,
    hash_config=HashConfig(precision=64),  # datatrove default (xxhash, 64-bit), spelled out
)
W = a.work


def executor(pipeline, name, tasks=1):
    return LocalPipelineExecutor(
        pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{W}/logs/{name}", skip_completed=False
    )


stages = [
    executor([JsonlReader(a.input), MinhashDedupSignature(
                output_folder=f"{W}/signatures",
                config=config,
                language=WhitespaceTokenizer() if a.tokenizer == "whitespace" else Languages.english,
            )], "signatures"),
    executor(
        [MinhashDedupBuckets(input_folder=f"{W}/signatures", output_folder=f"{W}/buckets", config=config)],
        "buckets",
        tasks=config.num_buckets,
    ),
    executor([MinhashDedupCluster(input_folder=f"{W}/buckets", output_folder=f"{W}/remove_ids", config=config)], "clusters"),
    executor(
        [
            JsonlReader(a.input),
            MinhashDedupFilter(input_folder=f"{W}/remove_ids", exclusion_writer=JsonlWriter(f"{W}/removed", compression=None)),
            JsonlWriter(f"{W}/output", compression=None),
        ],
        "filter",
    ),
]
for name, stage in zip(["signatures", "buckets", "clusters", "filter"], stages):
    t = time.perf_counter()
    stage.run()
    print(f"datatrove stage {name}: {time.perf_counter() - t:.2f}s", flush=True)
