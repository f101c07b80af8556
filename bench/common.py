"""Shared helpers of the benchmark scripts: an embedded stack with N agents, workflows, statistics.

The benchmarks drive Waterflow exactly as a user does: the embedded :class:`waterflow.embedded.Stack`
(a real nats-server and every service as its own process) and the SDK client over HTTP. Times
come from the run's own state and event history (``started_at``/``finished_at`` written by the
scheduler from the agents' events), so client polling does not blur them.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from waterflow import Client
from waterflow.embedded import Stack
from waterflow_common import subjects

# A benchmark stopped with SIGTERM (``timeout``, CI) must still stop the stack it started:
# turning the signal into SystemExit runs the ``finally`` blocks that do.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

RESULTS = Path(__file__).resolve().parent / "results"
COMMAND = "echo hello"
"""The shell command every benchmark step runs, in Waterflow and in the peers alike."""


def ts(value: datetime | str | None) -> float:
    """A timestamp of an SDK result (a datetime) or of raw API JSON (ISO text) as Unix seconds."""
    assert value is not None, "missing timestamp"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.timestamp()


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    """median, p50/p95/p99, min, max and count of a sample."""
    return {
        "n": len(values),
        "median": statistics.median(values) if values else float("nan"),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "min": min(values) if values else float("nan"),
        "max": max(values) if values else float("nan"),
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "at": datetime.now().isoformat(timespec="seconds"),
        # Other work on the machine while measuring shows up here.
        "loadavg_1m_at_end": os.getloadavg()[0],
    }


def sequential_workflow(name: str, steps: int, group: str = "bench") -> str:
    lines = [f"name: {name}", "jobs:", "  seq:", f"    runs-on: {group}", "    steps:"]
    lines += [f"      - run: {COMMAND}" for _ in range(steps)]
    return "\n".join(lines) + "\n"


def parallel_jobs_workflow(name: str, jobs: int, group: str = "bench") -> str:
    """``jobs`` independent one-step jobs (no ``needs``): all ready at once."""
    lines = [f"name: {name}", "jobs:"]
    for i in range(jobs):
        lines += [f"  j{i}:", f"    runs-on: {group}", "    steps:", f"      - run: {COMMAND}"]
    return "\n".join(lines) + "\n"


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_for_log(stack: Stack, name: str, needle: str, timeout: float = 30.0) -> None:
    path = stack.data_dir / "logs" / f"{name}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        process = stack.processes.get(name)
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {path}")
        time.sleep(0.05)
    raise TimeoutError(f"{name} did not log {needle!r} within {timeout}s; see {path}")


@contextmanager
def bench_stack(agents: int = 1, group: str = "bench", max_concurrent: int = 4, **stack_args: Any) -> Iterator[Stack]:
    """An embedded stack whose ``agents`` agents all serve ``group`` and are pulling tasks."""
    with tempfile.TemporaryDirectory(prefix="wf-bench-") as data_dir:
        stack = Stack(data_dir=Path(data_dir), agent_groups=(group,) if agents else (), agent_name="agent-0", **stack_args)
        stack.env.setdefault("WATERFLOW_MAX_CONCURRENT_STEPS", str(max_concurrent))
        stack.env.setdefault("WATERFLOW_LOG_LEVEL", "warning")
        stack.start(timeout=60)
        try:
            for i in range(1, agents):
                stack.start_agent(f"agent-{i}", (group,))
            # All agents must be pulling before timing starts.
            for i in range(agents):
                wait_for_agent(stack, f"agent-{i}")
            yield stack
        finally:
            stack.stop(timeout=3)  # a benchmark needs no graceful hand-back of running steps


def wait_for_agent(stack: Stack, name: str, timeout: float = 60.0) -> None:
    """Wait until an agent process holds a TCP connection to NATS, plus a moment to bind its
    consumer (benchmarks log at warning level, so there is no "ready" line to wait for)."""
    process = stack.processes[name]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        if _has_tcp_connection(process.pid, stack.nats_port):
            time.sleep(0.3)  # provisioning + consumer bind after connecting
            return
        time.sleep(0.05)
    raise TimeoutError(f"{name} did not connect to NATS within {timeout}s")


def _has_tcp_connection(pid: int, port: int) -> bool:
    """Whether process ``pid`` has an established TCP connection to 127.0.0.1:``port``."""
    try:
        inodes = {
            os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1]
            for fd in os.listdir(f"/proc/{pid}/fd")
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")
        }
    except OSError:
        return False
    hex_port = f"{port:04X}"
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[2].endswith(":" + hex_port) and parts[3] == "01" and parts[9] in inodes:
            return True
    return False


def submit_all(client: Client, workflows: Sequence[str], threads: int = 8) -> list[tuple[str, float]]:
    """Submit workflows concurrently; (run id, client-side submit time) each."""

    def one(source: str) -> tuple[str, float]:
        at = time.time()
        return client.submit(source)["id"], at

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, workflows))


def wait_all(client: Client, run_ids: Sequence[str], timeout: float = 600.0) -> list[dict[str, Any]]:
    """Final states of all runs (polls the API), raising if one does not succeed."""
    deadline = time.monotonic() + timeout
    states: dict[str, dict[str, Any]] = {}
    pending = list(run_ids)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} runs not finished after {timeout}s")
        still = []
        for run_id in pending:
            state = client.get(run_id)
            if state["status"] in ("succeeded", "failed", "cancelled"):
                states[run_id] = state
            else:
                still.append(run_id)
        pending = still
        if pending:
            time.sleep(0.05)
    failed = [s["id"] for s in states.values() if s["status"] != "succeeded"]
    if failed:
        raise RuntimeError(f"runs did not succeed: {failed[:5]}")
    return [states[r] for r in run_ids]


def steps_of(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in state["jobs"].values() for step in job.get("steps", [])]


def write_result(name: str, result: dict[str, Any], out: str | None) -> Path:
    """Write a benchmark's JSON result (to ``out`` or bench/results/<name>.json) and print it."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "machine": machine(), **result}
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result, indent=2, default=float))
    return path


def python() -> str:
    return sys.executable


def run_quiet(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=True, text=True, capture_output=True, **kwargs)


def registered_agents(nats_url: str) -> int | None:
    """How many agents the registry lists, or None where there is no registry yet."""
    bucket = getattr(subjects, "AGENTS_BUCKET", None)
    if bucket is None:
        return None

    async def count() -> int | None:
        import nats

        nc = await nats.connect(nats_url)
        try:
            kv = await nc.jetstream().key_value(bucket)
            try:
                return len(await kv.keys())
            except Exception:  # nats-py raises NoKeysError on an empty bucket
                return 0
        except Exception:
            return None
        finally:
            await nc.close()

    return asyncio.run(count())


def wait_registered(stack: Stack, count: int, timeout: float = 30.0) -> int | None:
    """Wait until ``count`` agents are in the registry; the number seen (None: no registry)."""
    deadline = time.monotonic() + timeout
    seen = registered_agents(stack.nats_url)
    while seen is not None and seen < count and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = registered_agents(stack.nats_url)
    return seen
