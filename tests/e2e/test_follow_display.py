"""What ``waterflow run`` and ``retry`` show while they follow a run: durations of steps, jobs and
the run, why a job waits, matrix values in names, jobs in graph order, only the retried attempt;
plain lines when piped, a spinner with the elapsed time on a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from waterflow import Client
from waterflow.embedded import Stack


def waterflow(stack: Stack, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, *args],
                          capture_output=True, text=True, timeout=timeout)


GRAPH = """\
name: display
jobs:
  last:
    runs-on: local
    needs: [build]
    steps:
      - name: Finish
        run: echo finishing
  build:
    runs-on: local
    strategy:
      matrix:
        arch: [amd64, arm64]
    steps:
      - name: Compile ${{ matrix.arch }}
        run: echo compiling ${{ matrix.arch }}
"""


def test_piped_run_shows_durations_matrix_values_and_graph_order(stack: Stack, tmp_path: Path) -> None:
    workflow = tmp_path / "display.yml"
    workflow.write_text(GRAPH)
    done = waterflow(stack, "run", str(workflow))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "\x1b[" not in out and "⠋" not in out  # piped: no colours, no spinner, no redraw
    # every finished step with its duration, every job and the run with theirs
    assert re.search(r"✓ build \(amd64\) › Compile amd64 \((?:\d+ms|\d+\.\ds)\)", out), out
    assert re.search(r"✓ build \(arm64\) › Compile arm64 \((?:\d+ms|\d+\.\ds)\)", out), out
    assert re.search(r"■ job last succeeded in (?:\d+ms|\d+\.\ds)", out), out
    assert re.search(r"■ job build \(amd64\) succeeded in (?:\d+ms|\d+\.\ds)", out), out
    assert re.search(r"Run succeeded in (?:\d+ms|\d+\.\ds)", out), out
    assert "build-1" not in out and "${{" not in out
    # the final table lists jobs in graph order: build's instances before last, which needs them
    table = out[out.index("display ·"):]
    rows = [m.group(1) for m in re.finditer(r"^│ (build \(amd64\)|build \(arm64\)|last) +│ (\S[^│]*\S) +│", table, re.MULTILINE)]
    assert rows == ["build (amd64)", "build (arm64)", "last"], table
    assert re.search(r"^│ build \(amd64\) +│ Compile amd64 +│ succeeded", table, re.MULTILINE), table  # one line, never folded
    assert "arch=amd64" in table and "arch=arm64" in table  # the matrix results by their values


def test_a_job_waiting_for_an_agent_says_why(stack: Stack, client: Client, tmp_path: Path) -> None:
    workflow = tmp_path / "waits.yml"
    workflow.write_text("name: waits\njobs:\n  deploy:\n    runs-on: nobody-here\n    steps:\n      - run: echo never\n")
    process = subprocess.Popen([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, "run", str(workflow)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "waiting:" in line:
                break
        waiting = lines[-1]
        assert "deploy waiting:" in waiting and "nobody-here" in waiting, lines
        run_id = re.search(r"Run (\S+) submitted", "".join(lines)).group(1)  # type: ignore[union-attr]
        client.cancel(run_id)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 1
        assert "Run cancelled" in rest
    finally:
        process.kill()
        process.wait()


def test_retry_shows_only_the_new_attempt(stack: Stack, client: Client, tmp_path: Path) -> None:
    marker = tmp_path / "second-time"
    source = ("name: flaky\njobs:\n  a:\n    runs-on: local\n    steps:\n"
              "      - name: Stable\n        run: echo stable-line\n"
              f"      - name: Flaky\n        run: if test -f {marker}; then echo attempt-two; else touch {marker}; echo attempt-one; exit 1; fi\n")
    run_id = client.submit(source)["id"]
    assert client.wait(run_id, timeout=60)["status"] == "failed"
    done = waterflow(stack, "retry", run_id)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "attempt-two" in out
    assert "attempt-one" not in out and "stable-line" not in out, out  # attempt 1's lines are not replayed
    assert out.count("✓ a › Flaky") == 1 and "✗" not in out, out
    assert re.search(r"Run succeeded in (?:\d+ms|\d+\.\ds)", out), out
    again = waterflow(stack, "status", run_id, "--follow")  # the retried run, followed afterwards
    assert again.returncode == 0 and "attempt-two" in again.stdout, again.stdout + again.stderr
    assert "attempt-one" not in again.stdout and "stable-line" not in again.stdout, again.stdout


def test_on_a_terminal_running_steps_show_a_spinner_and_elapsed_time(stack: Stack, tmp_path: Path) -> None:
    workflow = tmp_path / "slow.yml"
    workflow.write_text("name: slow\njobs:\n  a:\n    runs-on: local\n    steps:\n      - name: Quiet\n        run: sleep 3\n")
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, "-m", "waterflow", "--api-url", stack.api_url, "run", str(workflow)],
                               stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    output = b""
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        os.close(leader)
    text = output.decode(errors="replace")
    spinner_frames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
    assert any(frame in text for frame in spinner_frames), text[-2000:]
    assert re.search(r"a › Quiet\S* \S*(?:\d+ms|\d+\.\ds)", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)), text[-2000:]
    assert "Run succeeded" in text


def test_status_follow_shows_a_running_run_to_its_end(stack: Stack, client: Client) -> None:
    run_id = client.submit("name: later\njobs:\n  a:\n    runs-on: local\n    steps:\n"
                           "      - name: Wait\n        run: sleep 2; echo done-waiting\n")["id"]
    done = waterflow(stack, "status", run_id, "--follow")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done-waiting" in done.stdout and re.search(r"✓ a › Wait \(\d+\.\ds\)", done.stdout), done.stdout
    assert re.search(r"Run succeeded in \d+\.\ds", done.stdout)
    failed_id = client.submit("name: fails\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: exit 3\n")["id"]
    failed = waterflow(stack, "status", failed_id, "-f", "-o", "json")
    assert failed.returncode == 1 and '"status": "failed"' in failed.stdout, failed.stdout + failed.stderr
