"""Durability proven by killing real processes in the middle of runs (issue 4).

Each test has its own stack (``fresh_stack``) because it kills or restarts processes.
Steps append to marker files so "ran exactly once" is checked on disk, not trusted from state.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from waterflow import Client
from waterflow.embedded import Stack


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def step_status(client: Client, run_id: str, job: str, index: int) -> str:
    return client.get(run_id)["jobs"][job]["steps"][index]["status"]


def counting_workflow(marker: Path, steps: int, name: str) -> str:
    lines = [f"name: {name}", "jobs:", "  work:", "    runs-on: local", "    steps:"]
    for i in range(steps):
        lines += [f"      - name: s{i}", f"        run: echo {name}-{i} >> {marker}; sleep 0.05"]
    return "\n".join(lines) + "\n"


def test_kill_schedulers_repeatedly_with_two_running(fresh_stack: Stack, tmp_path: Path) -> None:
    stack, client = fresh_stack, Client(fresh_stack.api_url)
    stack.start_service("scheduler", name="scheduler-2")
    marker = tmp_path / "executed.txt"
    runs = [client.submit(counting_workflow(marker, 12, f"w{i}"), f"w{i}.yml")["id"] for i in range(4)]
    rng = random.Random(7)
    for round_ in range(4):
        time.sleep(rng.uniform(0.2, 0.8))
        victim = rng.choice(["scheduler", "scheduler-2"])
        stack.kill(victim)
        time.sleep(rng.uniform(0.1, 0.5))
        stack.restart(victim)
    for run_id in runs:
        assert client.wait(run_id, timeout=120)["status"] == "succeeded"
    executed = Counter(marker.read_text().split())
    assert len(executed) == 4 * 12
    assert [k for k, n in executed.items() if n > 1] == [], "a succeeded step ran twice"


def test_kill_agent_during_long_step_redelivers_to_another(tmp_path: Path) -> None:
    stack = Stack(data_dir=tmp_path / "stack", agent_groups=("local",), env={"WATERFLOW_ACK_WAIT": "3"})
    stack.start()
    try:
        stack.start_agent("second-agent", ["local"])
        client = Client(stack.api_url)
        marker = tmp_path / "attempts.txt"
        workflow = (f"jobs:\n  long:\n    runs-on: local\n    steps:\n"
                    f"      - run: echo $WATERFLOW_AGENT >> {marker}; sleep 4; echo $WATERFLOW_AGENT-$WATERFLOW_ATTEMPT-done >> {marker}\n")
        run_id = client.submit(workflow, "long.yml")["id"]
        wait_until(lambda: marker.exists() and marker.read_text().strip(), 30, "the step's script to start")
        first = marker.read_text().split()[0]
        stack.kill("local-agent" if first == "local-agent" else "second-agent")
        state = client.wait(run_id, timeout=60)
        assert state["status"] == "succeeded"
        step = state["jobs"]["long"]["steps"][0]
        survivor = step["agent"]
        assert survivor != first
        # The killed agent's script died with it (no "done" from it); the redelivered task ran as
        # a new attempt, so the history shows both and no two copies shared an attempt number.
        assert marker.read_text().split() == [first, survivor, f"{survivor}-2-done"]
        assert step["attempt"] == 2
        assert [a["attempt"] for a in step["attempts"]] == [1, 2]
        assert "interrupted" in step["attempts"][0]["error"]
    finally:
        stack.stop()


def test_nats_server_restart_mid_run(fresh_stack: Stack, tmp_path: Path) -> None:
    stack, client = fresh_stack, Client(fresh_stack.api_url)
    marker = tmp_path / "executed.txt"
    workflow = counting_workflow(marker, 6, "n").replace("sleep 0.05", "sleep 0.5")
    run_id = client.submit(workflow, "n.yml")["id"]
    wait_until(lambda: marker.exists() and len(marker.read_text().split()) >= 2, 30, "two steps to run")
    stack.kill("nats")
    time.sleep(1.0)
    stack.restart("nats")
    state = wait_until(lambda: _get_or_none(client, run_id, "succeeded"), 90, "the run to finish after the restart")
    assert state
    executed = Counter(marker.read_text().split())
    assert sorted(executed) == [f"n-{i}" for i in range(6)]


def _get_or_none(client: Client, run_id: str, status: str) -> dict | None:
    try:
        state = client.get(run_id)
    except Exception:
        return None  # the API answers 503 while NATS is restarting
    assert state["status"] in ("queued", "running", status), state["status"]
    return state if state["status"] == status else None


def _processes_with(text: str) -> list[str]:
    result = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True)
    return result.stdout.split()


def test_step_timeout_kills_the_process_tree(stack: Stack) -> None:
    client = Client(stack.api_url)
    tag = f"600.{os.getpid()}1"
    workflow = f"jobs:\n  t:\n    runs-on: local\n    steps:\n      - timeout-minutes: 0.05\n        run: (sleep {tag}) & sleep {tag}\n"
    state = client.wait(client.submit(workflow, "t.yml")["id"], timeout=60)
    step = state["jobs"]["t"]["steps"][0]
    assert state["status"] == "failed"
    assert "timed out" in step["error"]
    wait_until(lambda: not _processes_with(f"sleep {tag}"), 10, "the step's processes to die")


def test_cancel_running_run_kills_step_and_runs_cleanup(stack: Stack, tmp_path: Path) -> None:
    client = Client(stack.api_url)
    tag = f"600.{os.getpid()}2"
    cleanup = tmp_path / "cleanup-ran"
    workflow = (
        "jobs:\n  c:\n    runs-on: local\n    steps:\n"
        f"      - run: sleep {tag}\n"
        f"      - run: echo never\n"
        f"      - if: always()\n        run: touch {cleanup}\n"
    )
    run_id = client.submit(workflow, "c.yml")["id"]
    wait_until(lambda: step_status(client, run_id, "c", 0) == "running", 30, "the step to start")
    # "running" is reported as the agent starts the script: the process appears a moment later
    wait_until(lambda: _processes_with(f"sleep {tag}"), 10, "the step's process to start")
    client.cancel(run_id)
    state = client.wait(run_id, timeout=60)
    assert state["status"] == "cancelled"
    assert [s["status"] for s in state["jobs"]["c"]["steps"]] == ["cancelled", "skipped", "succeeded"]
    assert cleanup.exists()
    wait_until(lambda: not _processes_with(f"sleep {tag}"), 10, "the cancelled step's process to die")


def test_retry_failed_run_skips_succeeded_steps(stack: Stack, tmp_path: Path) -> None:
    client = Client(stack.api_url)
    marker, flag = tmp_path / "first.txt", tmp_path / "fixed"
    workflow = (
        "jobs:\n  r:\n    runs-on: local\n    steps:\n"
        f"      - run: echo once >> {marker}\n"
        f"      - run: test -f {flag}\n"
        f"      - run: echo after\n"
    )
    run_id = client.submit(workflow, "r.yml")["id"]
    assert client.wait(run_id, timeout=60)["status"] == "failed"
    flag.touch()
    client.retry(run_id)
    wait_until(lambda: client.get(run_id)["attempt"] == 2, 10, "the retry to be accepted")
    state = client.wait(run_id, timeout=60)
    assert state["status"] == "succeeded"
    assert marker.read_text().split() == ["once"]
    second = state["jobs"]["r"]["steps"][1]
    assert [a["status"] for a in second["attempts"]] == ["failed", "succeeded"]
    with pytest.raises(Exception):
        client.retry(run_id)  # a succeeded run has nothing to retry (409)


def test_retry_with_backoff_then_success(stack: Stack, tmp_path: Path) -> None:
    client = Client(stack.api_url)
    counter = tmp_path / "count"
    workflow = (
        "jobs:\n  b:\n    runs-on: local\n    steps:\n"
        "      - retry: {attempts: 3, initial-interval: 1, backoff-coefficient: 2}\n"
        f"        run: echo x >> {counter}; test $(wc -l < {counter}) -ge 3\n"
    )
    state = client.wait(client.submit(workflow, "b.yml")["id"], timeout=60)
    assert state["status"] == "succeeded"
    step = state["jobs"]["b"]["steps"][0]
    assert [a["status"] for a in step["attempts"]] == ["failed", "failed", "succeeded"]
    assert step["attempt"] == 3
    events = [e["type"] for e in client.events(state["id"])]
    # Short backoffs are waited on the agent running the job: no job task goes back and forth.
    assert events.count("step.retrying") == 2 and "timer.fired" not in events
    assert events.count("step.dispatched") == 1 and events.count("job.ran") == 1


def test_a_long_retry_backoff_is_a_durable_timer_and_the_job_resumes_on_its_agent(stack: Stack, tmp_path: Path) -> None:
    """A backoff longer than the agent's ``local_wait_seconds`` is handed to the scheduler's
    durable timer (the agent process is free meanwhile), and the job resumes on the agent that
    holds its workspace: a file written by the first step is still there for the retried one."""
    group = "longwait"
    stack.start_agent("longwait-1", [group], WATERFLOW_LOCAL_WAIT_SECONDS="0.5")
    stack.start_agent("longwait-2", [group], WATERFLOW_LOCAL_WAIT_SECONDS="0.5")
    client = Client(stack.api_url)
    counter = tmp_path / "count-long"
    workflow = (
        f"jobs:\n  b:\n    runs-on: {group}\n    steps:\n"
        "      - run: echo here > workspace-file.txt\n"
        "      - retry: {attempts: 3, initial-interval: 1, backoff-coefficient: 1}\n"
        f"        run: cat workspace-file.txt; echo x >> {counter}; test $(wc -l < {counter}) -ge 3\n"
    )
    state = client.wait(client.submit(workflow, "long.yml")["id"], timeout=90)
    assert state["status"] == "succeeded", state
    job = state["jobs"]["b"]
    assert [a["status"] for a in job["steps"][1]["attempts"]] == ["failed", "failed", "succeeded"]
    assert {s["agent"] for s in job["steps"]} == {job["agent"]}  # every step on the one agent
    events = [e["type"] for e in client.events(state["id"])]
    assert events.count("timer.fired") == 2 and events.count("job.ran") == 3  # two waits handed back, then done
    assert events.count("step.dispatched") == 3


def test_durable_sleep_survives_scheduler_restart(fresh_stack: Stack) -> None:
    stack, client = fresh_stack, Client(fresh_stack.api_url)
    workflow = "jobs:\n  s:\n    runs-on: local\n    steps:\n      - uses: sleep@v1\n        with: {seconds: 4}\n      - run: echo woke\n"
    started = time.monotonic()
    run_id = client.submit(workflow, "s.yml")["id"]
    wait_until(lambda: step_status(client, run_id, "s", 0) == "running", 20, "the sleep to start")
    stack.kill("scheduler")
    time.sleep(1.5)
    stack.restart("scheduler")
    state = client.wait(run_id, timeout=60)
    elapsed = time.monotonic() - started
    assert state["status"] == "succeeded"
    assert 3.0 <= elapsed < 20, elapsed  # neither skipped nor restarted from zero after a long delay
