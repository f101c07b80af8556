"""Profile the hot path: one workflow of N sequential steps; where the scheduler and agent spend.

Two runs of the same workflow on a fresh embedded stack each:
1. unprofiled: per step, the CPU time of every process (utime + stime from ``/proc/<pid>/stat``)
   and the NATS messages in and out (``/varz`` of nats-server's monitoring port: every publish,
   request, reply, ack and pull request is one message in, so ``in`` per step counts the round
   trips a step costs);
2. sampled: ``py-spy record`` attached to the running scheduler and agent for exactly the
   measured run (steady state, no start-up or imports), at ``--rate`` samples/s. Reported: the
   functions with the most samples on-CPU, own (leaf) and inclusive. ``--keep DIR`` keeps the raw
   collapsed stacks (``flamegraph.pl`` or speedscope read them). Without py-spy, step 2 is skipped.

    pip install py-spy                     # or: pip install -e '.[bench]'
    python bench/profile_hot_path.py --steps 1000 --keep /tmp/wf-prof
    python bench/profile_hot_path.py --smoke --out /tmp/p.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import sequential_workflow, steps_of, ts, wait_all, write_result  # noqa: E402

from waterflow import Client  # noqa: E402
from waterflow.embedded import Stack, free_port, nats_server_binary, wait_for_port  # noqa: E402

PROFILED = {"scheduler": "scheduler", "agent": "local-agent"}
"""Service -> its process name in the Stack."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class MonitoredStack(Stack):
    """The embedded stack with nats-server's HTTP monitoring port open."""

    monitor_port: int = 0

    def start_nats(self):  # type: ignore[no-untyped-def]
        self.monitor_port = free_port()
        store = self.data_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        argv = [nats_server_binary(), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(self.nats_port),
                "-m", str(self.monitor_port)]
        process = self._spawn("nats", argv, self.service_env())
        wait_for_port(self.nats_port, 10, process)
        return process

    def varz(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/varz", timeout=5) as response:
            return json.loads(response.read())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def py_spy() -> str | None:
    return shutil.which("py-spy")


def top_functions(collapsed: Path, limit: int) -> dict[str, Any]:
    """Own (leaf) and inclusive sample shares per function from py-spy's raw collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "share": n / total} for f, n in counter.most_common(limit)] if total else []
    return {"samples": total, "own": rows(own), "inclusive": rows(inclusive)}


def _short(frame: str) -> str:
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in frame:
            name, _, where = frame.partition(" (")
            return f"{name} ({where.split(marker, 1)[1]}"
    return frame


def measure(steps: int, rate: int, spy_dir: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wf-prof-") as data_dir:
        stack = MonitoredStack(data_dir=Path(data_dir), agent_groups=("bench",))
        stack.env["WATERFLOW_LOG_LEVEL"] = "warning"
        stack.start(timeout=60)
        spies: list[subprocess.Popen[bytes]] = []
        try:
            client = Client(stack.api_url)
            wait_all(client, [client.submit(sequential_workflow("warmup", 2))["id"]])
            if spy_dir is not None:
                for service, name in PROFILED.items():
                    spies.append(subprocess.Popen(
                        [py_spy() or "py-spy", "record", "--pid", str(stack.processes[name].pid), "--rate", str(rate),
                         "--format", "raw", "-o", str(spy_dir / f"{service}.txt"), "--nonblocking"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    ))
                time.sleep(1.0)  # py-spy attaches
            before_cpu = {name: cpu_seconds(p.pid) for name, p in stack.processes.items()}
            before = stack.varz()
            run_id = client.submit(sequential_workflow("profiled", steps))["id"]
            state, = wait_all(client, [run_id], timeout=600)
            after = stack.varz()
            after_cpu = {name: cpu_seconds(p.pid) for name, p in stack.processes.items()}
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)
            for spy in spies:
                try:
                    spy.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    spy.kill()
            stack.stop(timeout=5)
    run_steps = steps_of(state)
    elapsed = ts(run_steps[-1]["finished_at"]) - ts(run_steps[0]["started_at"])
    return {
        "steps_per_s": steps / elapsed,
        "cpu_ms_per_step": {n: (after_cpu[n] - before_cpu[n]) * 1000 / steps for n in after_cpu},
        "nats_messages_per_step": {
            "in": (after["in_msgs"] - before["in_msgs"]) / steps,
            "out": (after["out_msgs"] - before["out_msgs"]) / steps,
            "in_bytes": (after["in_bytes"] - before["in_bytes"]) / steps,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", help="directory to keep py-spy's collapsed stacks in")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.top = 5, 5
    unprofiled = measure(args.steps, args.rate, None)
    sampled: dict[str, Any] = {}
    top: dict[str, Any] = {}
    if py_spy():
        with tempfile.TemporaryDirectory(prefix="wf-prof-out-") as tmp:
            spy_dir = Path(args.keep) if args.keep else Path(tmp)
            spy_dir.mkdir(parents=True, exist_ok=True)
            sampled = measure(args.steps, args.rate, spy_dir)
            top = {s: top_functions(spy_dir / f"{s}.txt", args.top) for s in PROFILED if (spy_dir / f"{s}.txt").exists()}
    write_result("profile", {
        "params": vars(args),
        "steps": args.steps,
        "py_spy": py_spy() is not None,
        "unprofiled": unprofiled,
        "sampled": sampled,
        "nats_messages_per_step": unprofiled["nats_messages_per_step"],
        "top": top,
    }, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
