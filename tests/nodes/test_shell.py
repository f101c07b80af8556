"""shell / run / script nodes and the executor's handling of run: steps and bad references."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from nodetest import NodeRunner


async def test_shell_outputs_exit_code_last_lines_and_output_file(run_node: NodeRunner) -> None:
    step = await run_node("shell@v1", {
        "run": 'for i in 1 2 3 4 5; do echo "line $i"; done\necho "greeting=hi $WHO" >> "$WATERFLOW_OUTPUT"',
        "env": {"WHO": "there"}, "tail-lines": 2,
    })
    assert step.result.succeeded, step.result.error
    assert step.result.outputs == {"exit_code": "0", "last_lines": "line 4\nline 5", "greeting": "hi there"}
    assert ("stdout", "line 3") in step.lines


async def test_shell_failure_is_retryable_with_exit_code(run_node: NodeRunner) -> None:
    step = await run_node("shell", {"run": "echo before; echo oops >&2; exit 7"})
    assert not step.result.succeeded
    assert step.result.exit_code == 7 and step.result.retryable
    assert "exited with code 7" in (step.result.error or "")
    assert step.result.outputs["last_lines"] == "before\noops"


async def test_shell_choice_and_working_directory(run_node: NodeRunner) -> None:
    (run_node.workspace / "sub").mkdir()
    step = await run_node("run@v1", {"run": "import os; print(os.getcwd())", "shell": "python", "working-directory": "sub"})
    assert step.result.succeeded, step.result.error
    assert step.result.outputs["last_lines"] == str(run_node.workspace / "sub")


async def test_shell_timeout_kills_the_process_group(run_node: NodeRunner, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    step = await run_node("shell", {"run": f"sleep 30 & echo $! > {pid_file}; wait", "timeout": 0.5})
    assert not step.result.succeeded and step.result.retryable
    assert "timed out after 0.5 seconds" in (step.result.error or "")
    child = int(pid_file.read_text())
    assert not _alive(child), "the background child survived the timeout"


async def test_cancel_stops_a_node(run_node: NodeRunner, tmp_path: Path) -> None:
    cancel = asyncio.Event()
    started = tmp_path / "started"
    running = asyncio.create_task(run_node("shell", {"run": f"touch {started}; sleep 30"}, cancel=cancel))
    while not started.exists():
        await asyncio.sleep(0.02)
    cancel.set()
    step = await asyncio.wait_for(running, 10)
    assert step.result.error == "cancelled"


async def test_step_timeout_applies_to_nodes(run_node: NodeRunner) -> None:
    step = await run_node("shell", {"run": "sleep 30"}, timeout=0.5)
    assert step.result.error == "timed out after 0.5 seconds" and step.result.retryable


async def test_script_file_with_interpreter_and_args(run_node: NodeRunner) -> None:
    (run_node.workspace / "tools").mkdir()
    (run_node.workspace / "tools" / "add.py").write_text("import sys\nprint(sum(int(a) for a in sys.argv[1:]))\n")
    step = await run_node("script@v1", {"path": "tools/add.py", "args": ["2", 40]})
    assert step.result.succeeded, step.result.error
    assert step.result.outputs["last_lines"] == "42"


async def test_script_inline_and_missing_file(run_node: NodeRunner) -> None:
    step = await run_node("script", {"inline": 'echo "args: $*"', "interpreter": "sh", "args": ["a", "b"]})
    assert step.result.outputs["last_lines"] == "args: a b"
    missing = await run_node("script", {"path": "nope.sh"})
    assert not missing.result.retryable and "does not exist" in (missing.result.error or "")
    escape = await run_node("script", {"path": "../../../../etc/passwd"})
    assert not escape.result.retryable and "outside the allowed directories" in (escape.result.error or "")


async def test_invalid_parameters_are_not_retryable_and_all_reported(run_node: NodeRunner) -> None:
    step = await run_node("shell@v1", {"runn": "echo typo", "timeout": "soon"})
    assert not step.result.retryable
    error = step.result.error or ""
    assert "invalid parameters for shell@v1" in error
    assert "'run' is a required property" in error
    assert "with.timeout: 'soon' is not of type 'number'" in error
    assert "'runn' was unexpected" in error


async def test_unknown_node_and_unknown_version(run_node: NodeRunner) -> None:
    step = await run_node("nope@v1")
    assert not step.result.retryable and "unknown node 'nope@v1'" in (step.result.error or "")
    step = await run_node("shell@v9", {"run": "true"})
    assert "has no version 'v9'" in (step.result.error or "") and "available: v1" in (step.result.error or "")


async def test_secrets_are_masked_in_logs_outputs_and_errors(run_node: NodeRunner) -> None:
    step = await run_node("shell", {"run": 'echo "token is s3cr3t-value"; echo "t=s3cr3t-value" >> $WATERFLOW_OUTPUT; exit 1'},
                          secrets={"TOKEN": "s3cr3t-value"})
    assert "s3cr3t-value" not in step.text and "token is ***" in step.text
    assert step.result.outputs["t"] == "***" and "s3cr3t" not in step.result.outputs["last_lines"]


async def test_run_steps_go_through_the_runner_and_share_the_job_env(run_node: NodeRunner) -> None:
    first = await run_node(run='echo "FROM_RUN=1" >> "$GITHUB_ENV"')
    assert first.result.succeeded, first.result.error
    second = await run_node("env/set@v1", {"env": {"FROM_NODE": "two words", "MULTI": "a\nb"}})
    assert second.result.outputs == {"FROM_NODE": "two words", "MULTI": "a\nb"}
    third = await run_node(run='echo "$FROM_RUN|$FROM_NODE|$MULTI|$OVERRIDE"', env={"OVERRIDE": "step wins"})
    assert ("stdout", "1|two words|a") in third.lines and ("stdout", "b|step wins") in third.lines
    failing = await run_node(run="exit 4")
    assert failing.result.exit_code == 4 and failing.result.retryable


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (reaped later by init) counts as dead
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def test_sleep_runs_on_the_agent_if_it_ever_gets_there(run_node: NodeRunner) -> None:
    step = await run_node("sleep@v1", {"seconds": "10ms"})
    assert step.result.succeeded, step.result.error
    bad = await run_node("sleep@v1", {"seconds": "soon"})
    assert not bad.result.retryable


async def test_secret_values_sent_with_the_task_are_masked(run_node: NodeRunner) -> None:
    step = await run_node("http@v1", {"url": "http://127.0.0.1:1/?token=tok-from-scheduler", "timeout": 1},
                          mask=["tok-from-scheduler"])
    assert "tok-from-scheduler" not in step.text and "tok-from-scheduler" not in (step.result.error or "")
    assert "token=***" in step.text
