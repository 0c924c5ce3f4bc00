"""Real English paragraphs (200-2,000 characters) from documentation Debian ships, as JSONL.

usage: paragraphs.py OUT.jsonl [--n 1000 | --large] [--min-chars 200] [--max-chars 2000] [--no-install]

Sources, both pinned by Debian package version so the output is the same on every machine
with the same Debian release (bookworm: debian-reference-en 2.100, python3.11-doc 3.11.2):
  - the Debian Reference, /usr/share/debian-reference/*.en.html;
  - the Python 3.11 documentation, /usr/share/doc/python3.11/html/**/*.html;
taking the text of each <p> element outside <pre>, tables, code blocks and navigation.
Missing packages are installed with apt-get (as root) unless --no-install is given.

Paragraphs are whitespace-normalised, kept when prose-like (at least 60% letters and spaces,
no shell/markup runs), de-duplicated, and ordered by the SHA-1 of their text; the first N are
written (--n, default 1,000; --large means 10,000), so the 1,000 are a prefix of the 10,000.
Each row: {"id": "p000000", "text": ..., "source": "debian-reference" | "python-doc"}.
"""
import argparse
import glob
import hashlib
import html.parser
import json
import os
import re
import subprocess
import sys

REF = "/usr/share/debian-reference"
PYDOC = "/usr/share/doc/python3.11/html"
PACKAGES = {"debian-reference-en": f"{REF}/index.en.html", "python3.11-doc": PYDOC}


def norm(text):
    return re.sub(r"\s+", " ", text).strip()


def prose_like(text):
    if not text:
        return False
    letters = sum(c.isalpha() or c == " " for c in text)
    if letters < 0.75 * len(text):
        return False
    if re.search(r"[{}<>$|]{2}|[/\\][\w.-]+[/\\]|^\W", text):
        return False
    # Sentences: at least one full stop followed by a space or at the end.
    return bool(re.search(r"[a-z]{2}[.!?](\s|$)", text))


def ensure_packages(install):
    missing = [p for p, path in PACKAGES.items() if not os.path.exists(path)]
    if not missing:
        return
    if not install:
        sys.exit(f"missing Debian packages: {' '.join(missing)} (run without --no-install as root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], check=True,
                   stdout=subprocess.DEVNULL, env=env)


def html_paragraphs(paths):
    out = []
    for path in paths:
        p = ParagraphParser()
        with open(path, encoding="utf-8", errors="replace") as fh:
            p.feed(fh.read())
        out.extend(p.paras)
    return out


def reference_paragraphs():
    return html_paragraphs(sorted(glob.glob(f"{REF}/*.en.html")))


class ParagraphParser(html.parser.HTMLParser):
    """Text of <p> elements that are not inside <pre>, <table>, navigation or footers."""

    SKIP = {"pre", "table", "nav", "footer", "header", "script", "style"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paras, self.cur, self.in_p, self.skip, self.divs = [], [], 0, 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "div":
            cls = dict(attrs).get("class") or ""
            nav = any(k in cls for k in ("related", "sphinxsidebar", "footer", "highlight"))
            self.divs.append(nav)
            self.skip += nav
        elif tag in self.SKIP:
            self.skip += 1
        elif tag == "p":
            self.in_p += 1
            self.cur = []

    def handle_endtag(self, tag):
        if tag == "div":
            if self.divs and self.divs.pop():
                self.skip -= 1
        elif tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "p" and self.in_p:
            self.in_p -= 1
            if not self.skip:
                self.paras.append(norm("".join(self.cur)))
            self.cur = []

    def handle_data(self, data):
        if self.in_p:
            self.cur.append(data)


def python_doc_paragraphs():
    paths = sorted(glob.glob(f"{PYDOC}/**/*.html", recursive=True))
    return html_paragraphs([p for p in paths if "/_" not in p[len(PYDOC):]])


def collect(min_chars, max_chars):
    seen, rows = set(), []
    for source, paras in (("debian-reference", reference_paragraphs()), ("python-doc", python_doc_paragraphs())):
        for text in paras:
            if min_chars <= len(text) <= max_chars and prose_like(text) and text not in seen:
                seen.add(text)
                rows.append((hashlib.sha1(text.encode()).hexdigest(), source, text))
    rows.sort()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--large", action="store_true", help="10,000 paragraphs")
    ap.add_argument("--min-chars", type=int, default=200)
    ap.add_argument("--max-chars", type=int, default=2000)
    ap.add_argument("--no-install", action="store_true")
    args = ap.parse_args()
    n = 10_000 if args.large else args.n
    ensure_packages(not args.no_install)
    rows = collect(args.min_chars, args.max_chars)
    if len(rows) < n:
        sys.exit(f"only {len(rows)} paragraphs available, {n} asked")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        for i, (_, source, text) in enumerate(rows[:n]):
            fh.write(json.dumps({"id": f"p{i:06d}", "text": text, "source": source}, ensure_ascii=False) + "\n")
    by = {}
    for _, source, _t in rows[:n]:
        by[source] = by.get(source, 0) + 1
    print(f"{n} of {len(rows)} paragraphs -> {args.out} ({', '.join(f'{k}={v}' for k, v in sorted(by.items()))})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
