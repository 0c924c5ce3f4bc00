"""Random documents built from tokenizer- and filter-sensitive fragments (specials,
affixes, URLs, citations, policy phrases, odd whitespace, arbitrary code points), for a
differential run of the parity harness: fuzz_corpus.py OUT.jsonl [N] [SEED]."""
import json
import random
import sys

FRAGMENTS = [
    "the", "and", "of", "to", "with", "don't", "e.g.", "U.S.", "Mr.", ":)", "):", "(:", ":((", "...", "…", "—",
    "-", "- ", "• ", "#", "#tag", "$5", "10km", "5m.", "3+4", "a-b", "well-known", "x,y", "end.Start",
    "https://example.com/a?b=1", "www.test.org/x", "user@host.org", "[1]", "[edit]", "[citation needed]", "{", "}",
    "lorem ipsum", "JavaScript", "cookie policy", "terms of use", "'s", "’s", '"', "'", "(", ")", "?", "!", ".",
    ",", ";", ":", "°C.", "AB.", "İ", "ß", "日本語", "한국어", "\u0301", "\u200b", "🙂", "Hello world.",
    "This is a fine sentence.", "Another one here!", "Is it?", "a.m.", "10a.m.", "C++", "and/or", "''", "--",
]
SPACES = [" ", " ", " ", "  ", "\n", "\n\n", "\r\n", "\t", "\u00a0", "\u2028", "\u0085", "\x0b", "\u3000", "\x1c"]


def doc(rng):
    parts = []
    for _ in range(rng.randrange(400)):
        r = rng.random()
        if r < 0.55:
            parts.append(rng.choice(FRAGMENTS))
        elif r < 0.85:
            parts.append(rng.choice(SPACES))
        elif r < 0.9:
            parts.append(chr(rng.choice([rng.randrange(0x20, 0x7f), rng.randrange(0xa0, 0x3000), rng.randrange(0x1f300, 0x1f600)])))
        else:
            parts.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(1, 12))))
    text = "".join(parts)
    if rng.random() < 0.3:  # repeat lines to reach the repetition rules
        lines = text.split("\n")
        text = "\n".join(lines + rng.choices(lines, k=len(lines)))
    return text


if __name__ == "__main__":
    out, n, seed = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3000, int(sys.argv[3]) if len(sys.argv) > 3 else 7
    rng = random.Random(seed)
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"fuzz:{i}", "text": doc(rng)}, ensure_ascii=False) + "\n")
