"""Deterministic sample of real HTML pages from Debian's Python and Rust documentation.

usage: sample.py OUT_LIST N_PER_SET

Pages are ranked by the SHA-1 of their path within each documentation set and the first
N of each set are taken, so the sample is the same on every machine with the same
packages. Redirect stubs, rendered source listings and implementor indexes are left out:
they are not documents.
"""
import hashlib
import os
import sys

SETS = {
    "python": ["/usr/share/doc/python3/html", "/usr/share/doc/python3-doc/html"],
    "rust": ["/usr/share/doc/rust-doc/html"],
}
SKIP_DIRS = {"_sources", "_static", "_downloads", "_images", "src", "implementors"}


def pages(root):
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for f in sorted(filenames):
            if not f.endswith(".html"):
                continue
            path = os.path.join(dirpath, f)
            try:
                with open(path, "rb") as fh:
                    head = fh.read(4096)
            except OSError:
                continue
            # Redirect stubs carry no text of their own.
            if b"http-equiv=\"refresh\"" in head.lower() or b"<title>redirection</title>" in head.lower():
                continue
            yield os.path.realpath(path)


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    chosen = []
    for name, roots in SETS.items():
        found = sorted({p for r in roots if os.path.isdir(r) for p in pages(r)})
        if not found:
            print(f"warning: no {name} documentation pages found", file=sys.stderr)
            continue
        found.sort(key=lambda p: hashlib.sha1(p.encode()).hexdigest())
        chosen.extend(found[:n])
        print(f"{name}: {len(found)} pages, sampled {min(n, len(found))}", file=sys.stderr)
    with open(out, "w") as fh:
        fh.writelines(p + "\n" for p in chosen)


if __name__ == "__main__":
    main()
