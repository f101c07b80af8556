"""The agent waits for step processes with pidfds (no thread per child) where it can."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import asyncio, json, threading
from waterflow_agent.runner import watch_children_with_pidfd

async def main():
    used = watch_children_with_pidfd()
    before = threading.active_count()
    processes = [await asyncio.create_subprocess_exec("sh", "-c", f"sleep 0.3; exit {i}") for i in range(5)]
    during = threading.active_count()
    codes = [await p.wait() for p in processes]
    print(json.dumps({"pidfd": used, "codes": codes, "threads_before": before, "threads_during": during}))

asyncio.run(main())
"""


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python >= 3.12 uses pidfds by itself")
def test_step_processes_are_awaited_without_a_thread_each() -> None:
    out = subprocess.run([sys.executable, "-W", "error", "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["codes"] == [0, 1, 2, 3, 4]
    if result["pidfd"]:
        # The threaded watcher would have had a thread waiting for each of the 5 processes.
        assert result["threads_during"] == result["threads_before"]
