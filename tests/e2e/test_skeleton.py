"""End to end through real processes: submit over HTTP, run on a real agent, read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from waterflow import ApiError, Client
from waterflow.embedded import Stack

TWO_STEPS = """
name: two-steps
jobs:
  build:
    runs-on: local
    steps:
      - name: first
        run: |
          echo "one-a"
          echo "one-b" >&2
          echo "one-c"
      - name: second
        env:
          WHO: world
        run: echo "hello $WHO"
"""

FAILING = """
name: failing
jobs:
  build:
    runs-on: local
    steps:
      - name: ok
        run: echo before
      - name: breaks
        run: |
          echo "about to fail"
          exit 3
      - name: never
        run: touch {marker}
"""


def test_two_steps_succeed(client: Client) -> None:
    run = client.submit(TWO_STEPS, "two.yml")
    state = client.wait(run["id"], timeout=60)
    assert state["status"] == "succeeded"
    steps = state["jobs"]["build"]["steps"]
    assert [s["status"] for s in steps] == ["succeeded", "succeeded"]
    assert [s["exit_code"] for s in steps] == [0, 0]
    for step in steps:
        assert step["started_at"] <= step["finished_at"]
        assert step["agent"] == "local-agent"
    assert state["started_at"] <= state["finished_at"]


def test_failing_step_fails_the_run_and_skips_the_rest(client: Client, tmp_path: Path) -> None:
    marker = tmp_path / "never-ran"
    run = client.submit(FAILING.format(marker=marker), "failing.yml")
    state = client.wait(run["id"], timeout=60)
    assert state["status"] == "failed"
    ok, breaks, never = state["jobs"]["build"]["steps"]
    assert (ok["status"], ok["exit_code"]) == ("succeeded", 0)
    assert (breaks["status"], breaks["exit_code"]) == ("failed", 3)
    assert "exited with code 3" in breaks["error"]
    assert never["status"] == "skipped" and never.get("exit_code") is None
    assert not marker.exists()
    assert state["jobs"]["build"]["status"] == "failed"


def test_logs_of_both_steps_in_order(client: Client) -> None:
    run = client.submit(TWO_STEPS, "two.yml")
    client.wait(run["id"], timeout=60)
    lines = client.logs(run["id"])
    texts = [(line["step"], line["text"]) for line in lines]
    stdout = [t for t in texts if t[1] in ("one-a", "one-c", "hello world")]
    assert stdout == [(0, "one-a"), (0, "one-c"), (1, "hello world")]
    stderr = [line for line in lines if line["stream"] == "stderr"]
    assert [(l["step"], l["text"]) for l in stderr] == [(0, "one-b")]


def test_invalid_yaml_is_rejected_with_its_line(client: Client) -> None:
    bad = "name: broken\njobs:\n  build:\n    runs-on: local\n    steps: [\n      - run: echo\n"
    with pytest.raises(ApiError) as caught:
        client.submit(bad, "broken.yml")
    assert caught.value.status == 400
    problem = caught.value.problem
    assert problem["errors"][0]["path"] == "broken.yml"
    assert problem["errors"][0]["line"] == 6
    assert "broken.yml:6:" in problem["detail"]


def test_unknown_key_is_rejected_with_line_column_and_hint(client: Client) -> None:
    bad = "jobs:\n  build:\n    runs-on: local\n    stpes:\n      - run: echo\n"
    with pytest.raises(ApiError) as caught:
        client.submit(bad, "typo.yml")
    (error,) = [e for e in caught.value.problem["errors"] if e["rule"] == "unknown-key"]
    assert (error["line"], error["col"]) == (4, 5)
    assert "did you mean 'steps'" in error["hint"]


def test_run_list_and_events(client: Client) -> None:
    run = client.submit(TWO_STEPS, "two.yml")
    client.wait(run["id"], timeout=60)
    assert run["id"] in [r["id"] for r in client.list()]
    other = client.submit(TWO_STEPS, "two.yml")
    newest = client.list(limit=1)
    assert [r["id"] for r in newest] == [other["id"]]
    assert [r["id"] for r in client.list(limit=1, before=other["id"])] == [run["id"]]
    every = [r["id"] for r in client.iter_runs(page_size=1)]
    assert every[:2] == [other["id"], run["id"]] and len(every) == len(set(every))
    types = [e["type"] for e in client.events(run["id"])]
    assert types[0] == "run.created"
    assert types[-1] == "run.completed"
    assert types.count("step.succeeded") == 2
    assert types.count("step.dispatched") == 1 and types.count("job.ran") == 1  # one job task runs both steps


def test_unknown_run_is_404(client: Client) -> None:
    with pytest.raises(ApiError) as caught:
        client.get("rdoesnotexist")
    assert caught.value.status == 404


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waterflow", "--api-url", stack.api_url, *args],
        capture_output=True, text=True, timeout=120,
    )


def test_cli_run_follows_and_exit_codes(stack: Stack, tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(TWO_STEPS)
    result = _cli(stack, "run", str(good))
    assert result.returncode == 0, result.stderr
    assert "hello world" in result.stdout
    assert "Run succeeded" in result.stdout

    bad = tmp_path / "bad.yml"
    bad.write_text(FAILING.format(marker=tmp_path / "m"))
    result = _cli(stack, "run", str(bad))
    assert result.returncode == 1
    assert "about to fail" in result.stdout
    assert "Run failed" in result.stdout

    typo = tmp_path / "typo.yml"
    typo.write_text("jobs:\n  a:\n    runs-on: local\n    stpes: []\n")
    result = _cli(stack, "run", str(typo))
    assert result.returncode == 2
    assert f"{typo}:4:5: unknown key 'stpes'" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_logs_prints_output_verbatim_and_follows(stack: Stack, tmp_path: Path) -> None:
    client = Client(stack.api_url)
    workflow = "jobs:\n  j:\n    runs-on: local\n    steps:\n      - run: |\n          echo '[red]not markup[/] [bold'\n          sleep 1\n          echo done-later\n"
    run_id = client.submit(workflow, "m.yml")["id"]
    followed = _cli(stack, "logs", "--follow", run_id)
    assert followed.returncode == 0, followed.stderr
    assert "[red]not markup[/] [bold" in followed.stdout and "done-later" in followed.stdout
    again = _cli(stack, "logs", run_id, "--job", "j")
    assert "done-later" in again.stdout


def test_cli_run_shows_user_text_with_brackets_verbatim(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "brackets.yml"
    path.write_text("jobs:\n  j:\n    runs-on: local\n    steps:\n      - name: 'deploy [/] [bold'\n        run: echo '[/red] out'; exit 2\n")
    result = _cli(stack, "run", str(path))
    assert result.returncode == 1, result.stderr
    assert "deploy [/] [bold" in result.stdout and "[/red] out" in result.stdout
    assert "Traceback" not in result.stderr


def test_cli_logs_tail_and_since(stack: Stack) -> None:
    client = Client(stack.api_url)
    workflow = "jobs:\n  j:\n    runs-on: local\n    steps:\n      - run: for i in 1 2 3 4 5; do echo line-$i; done\n"
    run_id = client.submit(workflow, "t.yml")["id"]
    client.wait(run_id, timeout=60)
    tail = _cli(stack, "logs", run_id, "--tail", "2")
    assert tail.returncode == 0, tail.stderr
    assert [line.split()[-1] for line in tail.stdout.splitlines()] == ["line-4", "line-5"]
    followed = _cli(stack, "logs", run_id, "-f", "-n", "1")
    assert [line.split()[-1] for line in followed.stdout.splitlines()] == ["line-5"]
    assert "line-1" in _cli(stack, "logs", run_id, "--since", "10m").stdout
    assert _cli(stack, "logs", run_id, "--since", "2999-01-01T00:00").stdout == ""
    bad = _cli(stack, "logs", run_id, "--since", "yesterday-ish")
    assert bad.returncode == 2 and "--since 'yesterday-ish'" in bad.stderr and "Traceback" not in bad.stderr
    bad = _cli(stack, "logs", run_id, "--tail", "-3")
    assert bad.returncode == 2 and "not a number of lines" in bad.stderr
