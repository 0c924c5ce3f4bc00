"""Build the parity corpus: JSONL {"id", "text"} of real English documents shipped on
this Debian machine (Python HTML docs from `apt-get install python3-doc`, Rust toolchain
HTML docs, man pages, /usr/share/doc files, crate sources from the cargo registry) plus deliberately low-quality documents derived from
them (navigation boilerplate, lists, repeated lines, code, cookie notices, lorem ipsum).

Deterministic for a given machine: files are sorted and sampled with a fixed seed.
Usage: build_corpus.py OUT.jsonl [--max-docs N]
"""
import argparse
import glob
import gzip
import html.parser
import json
import os
import random
import subprocess

MAX_CHARS = 40_000  # keeps spaCy's per-document cost bounded; cut at a paragraph
RNG = random.Random(20240501)


class _Text(html.parser.HTMLParser):
    BLOCK = {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "br", "tr", "table",
             "section", "article", "header", "footer", "nav", "dt", "dd", "blockquote", "main", "summary"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "noscript", "template"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "noscript", "template"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(raw: str) -> str:
    p = _Text()
    p.feed(raw)
    text = "".join(p.parts)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    out, blank = [], 0
    for line in lines:
        if line:
            if blank and out:
                out.append("")
            out.append(line)
            blank = 0
        else:
            blank += 1
    return "\n".join(out)


def cap(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    cut = text.rfind("\n\n", 0, MAX_CHARS)
    return text[: cut if cut > MAX_CHARS // 2 else MAX_CHARS]


def read(path: str) -> str:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read(4 * MAX_CHARS)


def sample(paths, k):
    paths = sorted(set(paths))
    return RNG.sample(paths, min(k, len(paths)))


def rust_docs(k_book, k_api):
    root = glob.glob(os.path.expanduser("~/.rustup/toolchains/1.95.0-*/share/doc/rust/html"))
    if not root:
        return
    root = root[0]
    books = [p for sub in ("book", "reference", "nomicon", "rust-by-example", "cargo", "edition-guide",
                           "embedded-book", "rustc", "rustdoc", "unstable-book", "style-guide")
             for p in glob.glob(f"{root}/{sub}/**/*.html", recursive=True)]
    api = [p for sub in ("std", "core", "alloc") for p in glob.glob(f"{root}/{sub}/**/*.html", recursive=True)]
    for kind, paths, k in (("rustbook", books, k_book), ("rustapi", api, k_api)):
        for p in sample(paths, k):
            yield f"{kind}:{os.path.relpath(p, root)}", html_to_text(read(p))


def python_docs(k):
    root = "/usr/share/doc/python3.11/html"
    for p in sample(glob.glob(f"{root}/**/*.html", recursive=True), k):
        yield f"pydoc:{os.path.relpath(p, root)}", html_to_text(read(p))


def man_pages(k):
    for p in sample(glob.glob("/usr/share/man/man[1-8]/*.gz"), k):
        try:
            r = subprocess.run(["man", "-l", "-P", "cat", p], capture_output=True, timeout=10,
                               env={**os.environ, "MANWIDTH": "80", "LANG": "C.UTF-8"})
        except subprocess.TimeoutExpired:
            continue
        # Strip overstrike bold/underline sequences of nroff output.
        out = r.stdout.decode("utf-8", "replace")
        text = []
        for ch in out:
            if ch == "\b" and text:
                text.pop()
            else:
                text.append(ch)
        yield f"man:{os.path.basename(p)}", "".join(text)


def share_doc(k):
    paths = [p for p in glob.glob("/usr/share/doc/**/*", recursive=True) if os.path.isfile(p)
             and (os.path.basename(p).lower().startswith(("readme", "copyright", "changelog", "news", "faq", "todo"))
                  or p.endswith((".txt", ".md", ".rst")))]
    for p in sample(paths, k):
        raw = read(p)
        yield f"doc:{os.path.relpath(p, '/usr/share/doc')}", html_to_text(raw) if p.endswith(".html") else raw


def crate_sources(k):
    paths = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/*/src/**/*.rs"), recursive=True)
    paths += glob.glob(os.path.expanduser("~/.cargo/registry/src/*/*/README.md"))
    for p in sample(paths, k):
        yield f"crate:{os.path.relpath(p, os.path.expanduser('~/.cargo/registry/src'))}", read(p)


BOILER = [
    "Home | About | Contact | Blog | Login",
    "This website uses cookies to ensure you get the best experience.",
    "By using this site you agree to our Terms of Use and Privacy Policy.",
    "Please enable JavaScript to view the comments.",
    "Share on Facebook", "Tweet", "Subscribe to our newsletter!", "Copyright 2024. All rights reserved.",
    "Read more...", "Click here to continue…", "- Previous", "- Next", "• Related posts",
]
LOREM = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore."


def degraded(real):
    """Low-quality variants built from real documents."""
    texts = [t for _, t in real if len(t) > 400]
    for i in range(len(texts) // 3):
        base = RNG.choice(texts)
        paras = [p for p in base.split("\n\n") if p.strip()]
        kind = i % 9
        if kind == 0:  # navigation / cookie boilerplate around real paragraphs
            lines = RNG.sample(BOILER, 5) + paras[: RNG.randint(1, 6)] + RNG.sample(BOILER, 4)
            text = "\n".join(lines)
        elif kind == 1:  # repeated lines
            line = RNG.choice([l for l in base.split("\n") if l.strip()] or ["x"])
            text = "\n".join([line] * RNG.randint(3, 40) + paras[:2])
        elif kind == 2:  # bullet list of short items
            words = base.split()
            text = "\n".join(RNG.choice(["- ", "• ", "* ", ""]) + " ".join(words[j:j + RNG.randint(1, 6)])
                             for j in range(0, min(len(words), 600), 6))
        elif kind == 3:  # repeated paragraphs
            text = "\n\n".join(paras[:3] * RNG.randint(2, 5))
        elif kind == 4:  # lorem ipsum inserted
            paras.insert(RNG.randint(0, len(paras)), LOREM)
            text = "\n\n".join(paras)
        elif kind == 5:  # wikipedia-style citations and ellipses
            text = "\n".join(p.replace(". ", RNG.choice([". [1] ", "[citation needed]. ", "... ", "[edit] . ", ". "]), 3)
                             for p in paras)
        elif kind == 6:  # hashtags / symbols
            text = " ".join("#" + w if RNG.random() < 0.2 else w for w in base.split()[:800])
        elif kind == 7:  # truncated snippet
            text = base[: RNG.randint(20, 600)]
        else:  # shuffled lines: same vocabulary, broken structure
            lines = base.split("\n")
            RNG.shuffle(lines)
            text = "\n".join(lines)
        yield f"degraded{kind}:{i}", text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_args()
    s = a.scale
    real = []
    for gen in (python_docs(int(500 * s)), rust_docs(int(900 * s), int(700 * s)), man_pages(int(700 * s)),
                share_doc(int(900 * s)), crate_sources(int(300 * s))):
        for doc_id, text in gen:
            text = cap(text)
            if text.strip():
                real.append((doc_id, text))
    docs = real + [(i, cap(t)) for i, t in degraded(real)]
    with open(a.out, "w", encoding="utf-8") as f:
        for doc_id, text in docs:
            f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    print(f"{len(docs)} documents ({len(real)} real, {len(docs) - len(real)} degraded) -> {a.out}")


if __name__ == "__main__":
    main()
