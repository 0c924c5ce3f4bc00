"""``python -m curate run SPEC [--executor ray]``: what ``curate run --executor ray`` calls."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import CurateError, Pipeline


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline spec")
    run.add_argument("spec")
    run.add_argument("--executor", choices=["local", "ray"], default="local")
    run.add_argument("--workers", type=int, help="Ray tasks at once (default: the cluster's CPUs)")
    run.add_argument("--threads", type=int, help="local worker threads (default: every core)")
    run.add_argument("--resume", action="store_true")
    run.add_argument("--ray-address", help="an existing Ray cluster (default: $RAY_ADDRESS, else a local one)")
    args = parser.parse_args(argv)
    try:
        p = Pipeline.from_yaml(args.spec)
        if args.executor == "ray" and args.ray_address:
            import ray

            ray.init(address=args.ray_address)
        r = p.run(args.threads, executor=args.executor, workers=args.workers, resume=args.resume)
    except CurateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{p.name}: {r.records_in} records in, {r.records_out} out, {r.rejected} rejected, {r.quarantined} quarantined")
    if r.version:
        print(f"run {r.run}: {'committed' if r.new_version else 'output unchanged, still'} {r.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
