"""Writes a seeded synthetic web-text corpus as JSONL: `gen_corpus.py OUT.jsonl TARGET_BYTES`.

Documents vary in length (a few words to several paragraphs) and carry metadata like a
crawl export (url, timestamp, nested info), so parsing cost resembles real data.
"""

import json
import random
import sys

out, target = sys.argv[1], int(float(sys.argv[2]))
rng = random.Random(1234)
words = [
    "".join(rng.choice("etaoinshrdlcumwfgypbvkjxqz") for _ in range(rng.choice([1, 2, 3, 3, 4, 5, 6, 7, 8, 10])))
    for _ in range(5000)
]
docs = []
for i in range(20000):
    paras = []
    for _ in range(rng.choice([1, 1, 2, 3, 5])):
        n = rng.choice([5, 20, 60, 120, 250])
        paras.append(" ".join(rng.choice(words) for _ in range(n)).capitalize() + ".")
    docs.append("\n\n".join(paras))
written = 0
i = 0
with open(out, "w") as f:
    while written < target:
        rec = {
            "id": f"doc-{i}",
            "url": f"https://site{i % 997}.example.org/page/{i}",
            "timestamp": 1700000000 + i,
            "text": docs[i % len(docs)],
            "info": {"lang": "en", "score": (i % 100) / 100},
        }
        line = json.dumps(rec) + "\n"
        f.write(line)
        written += len(line)
        i += 1
print(f"{out}: {i} records, {written} bytes")
