"""Footprint: time from Stack.start() to ready, and the idle RSS of every process.

Each repetition starts a fresh embedded stack (nats-server, api, compiler, scheduler, one agent)
in a new data directory, timing ``Stack.start()`` until ``GET /v1/health`` answers (what
``waterflow up`` waits for before it prints "Ready"). It then runs one workflow (so every
service has done real work and imported what it needs), waits ``--idle`` seconds, and reads
each process's resident memory from ``/proc/<pid>/status`` (VmRSS).

    python bench/footprint.py --repeat 5
    python bench/footprint.py --smoke --out /tmp/f.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import rss_kib, sequential_workflow, summary, wait_all, write_result  # noqa: E402

from waterflow import Client  # noqa: E402
from waterflow.embedded import Stack  # noqa: E402


def once(idle: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="wf-bench-") as data_dir:
        stack = Stack(data_dir=Path(data_dir), agent_groups=("bench",))
        stack.env["WATERFLOW_LOG_LEVEL"] = "warning"
        started = time.perf_counter()
        stack.start(timeout=60)
        ready_s = time.perf_counter() - started
        try:
            client = Client(stack.api_url)
            wait_all(client, [client.submit(sequential_workflow("fp", 3))["id"]])
            time.sleep(idle)
            rss = {name: rss_kib(p.pid) / 1024 for name, p in stack.processes.items()}
        finally:
            stack.stop(timeout=3)
    return {"ready_s": ready_s, **{f"rss_mib_{name}": value for name, value in rss.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--idle", type=float, default=2.0, help="seconds idle before reading RSS")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeat, args.idle = 1, 0.2
    samples = [once(args.idle) for _ in range(args.repeat)]
    keys = sorted({k for s in samples for k in s})
    write_result("footprint", {
        "params": vars(args),
        "summary": {k: summary([s[k] for s in samples if k in s]) for k in keys},
        "samples": samples,
    }, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
