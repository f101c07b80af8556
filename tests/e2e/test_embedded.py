"""The two ways users start Waterflow on one machine: ``waterflow up`` and ``run --embedded``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from waterflow.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_up_starts_everything_prints_the_api_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    api_port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "waterflow", "up", "--data-dir", str(tmp_path / "data"),
         "--nats-port", str(free_port()), "--api-port", str(api_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        started = time.monotonic()
        assert up.stdout is not None
        line = ""
        while "Ready." not in line:
            line = up.stdout.readline()
            assert line, "waterflow up exited before it was ready"
        assert f"http://127.0.0.1:{api_port}" in line
        assert time.monotonic() - started < 30
        children = _children_of(up.pid)
        assert len(children) == 5  # nats-server, api, compiler, scheduler, agent: separate processes
        run = subprocess.run(
            [sys.executable, "-m", "waterflow", "--api-url", f"http://127.0.0.1:{api_port}", "run", str(ROOT / "examples" / "hello.yml")],
            capture_output=True, text=True, timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Run succeeded" in run.stdout
        assert (tmp_path / "data" / "logs" / "scheduler.log").exists()
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
        for child in children:  # nothing left behind
            assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        if up.stdout is not None:
            up.stdout.close()


def test_run_embedded_is_one_command(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "waterflow", "run", "--embedded", str(ROOT / "examples" / "hello.yml")],
        capture_output=True, text=True, timeout=180, env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Hello from" in done.stdout and "Run succeeded" in done.stdout
