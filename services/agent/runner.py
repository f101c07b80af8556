"""Running one ``run:`` step as a process: shells, environment, live output, timeouts, kills.

The step runs in its own process group (``start_new_session``) so a timeout or a cancel kills the
whole tree the script started, not just the shell, as GitHub's runner and Ansible do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shlex
import shutil
import signal
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from waterflow_common.messages import Annotation, StepTask

from . import processes
from .commands import WorkflowCommands
from .outputs import OutputFileError, parse_output_file

MAX_LINE = 16 * 1024
"""Longer output lines are cut: one 100 MB line must not become one 100 MB message."""

Emit = Callable[[str, str], None]
"""emit(stream, text) with stream 'stdout', 'stderr' or 'system'."""


def watch_children_with_pidfd() -> bool:
    """Wait for step processes with pidfds in the event loop instead of a thread per child.

    Python 3.11's default ``ThreadedChildWatcher`` starts a thread for every subprocess; in the
    hot-path profile (docs/performance.md) that was ~13 % of the agent's time. Python ≥ 3.12 uses
    pidfds by itself where the kernel has them (Linux ≥ 5.3); returns whether it is now in use.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # an old kernel, or a sandbox that forbids the call
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())
        asyncio.get_event_loop_policy().set_child_watcher(watcher)
    return True


@dataclass
class StepResult:
    exit_code: int | None
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    annotations: tuple[Annotation, ...] = ()
    summary: str | None = None
    started: bool = True
    """False when the process could not even be started (no retry can help)."""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.error is None


_SHELLS: dict[str, tuple[str, str]] = {
    # name: (command template, script file suffix); GitHub's defaults.
    "bash": ("bash --noprofile --norc -eo pipefail {0}", ".sh"),
    "sh": ("sh -e {0}", ".sh"),
    "python": (f"{shlex.quote(shutil.which('python3') or sys.executable)} {{0}}", ".py"),
    "pwsh": ("pwsh -command \". '{0}'\"", ".ps1"),
}


def shell_command(shell: str | None, script: Path) -> list[str]:
    """The argv that runs ``script`` with ``shell`` (a known name or a template with ``{0}``)."""
    name = shell or ("bash" if shutil.which("bash") else "sh")
    template = _SHELLS[name][0] if name in _SHELLS else name
    return [part.replace("{0}", str(script)) for part in shlex.split(template)]


def script_suffix(shell: str | None) -> str:
    return _SHELLS.get(shell or "bash", ("", ".sh"))[1]


def step_environment(base: Mapping[str, str], task: StepTask, extra: Mapping[str, str]) -> dict[str, str]:
    """The process environment: the agent's own minus its ``WATERFLOW_*`` settings (they hold
    NATS credentials), then Waterflow's variables, then the workflow's env."""
    env = {k: v for k, v in base.items() if not k.startswith("WATERFLOW_")}
    env.update(extra)
    env.update(task.env)
    return env


async def run_script(
    task: StepTask,
    *,
    workspace: Path,
    temp_dir: Path,
    env: dict[str, str],
    emit: Emit,
    cancel: asyncio.Event,
    commands: WorkflowCommands | None = None,
) -> StepResult:
    """Run the task's ``run:`` script to completion, timeout or cancel. ``commands`` reads the
    workflow commands (``::set-output``, ``::add-mask::``…) on its stdout."""
    step = task.step
    assert step.run is not None
    temp_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{task.run_id}-{task.job_id}-{step.index}-{task.attempt}"
    script = temp_dir / f"{stem}{script_suffix(step.shell)}"
    script.write_text(step.run)
    files = StepFiles.create(temp_dir, stem)
    output_file = files.output
    env = {**env, **files.environment()}
    cwd = workspace / step.working_directory if step.working_directory else workspace
    try:
        cwd.mkdir(parents=True, exist_ok=True)
        argv = shell_command(step.shell, script)
        process = await asyncio.create_subprocess_exec(
            *processes.command(argv), cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            limit=4 * MAX_LINE, **processes.spawn_options(),
        )
    except (OSError, ValueError) as error:
        return StepResult(exit_code=None, error=f"could not start the step: {error}", started=False)
    processes.started(process.pid)
    try:
        result = await _supervise(task, process, emit, cancel, output_file, script, commands)
    finally:
        processes.finished(process.pid)
        script.unlink(missing_ok=True)
    summary = files.read_and_remove()
    if commands is None:
        return dataclasses.replace(result, summary=summary)
    return dataclasses.replace(result, outputs={**commands.outputs, **result.outputs}, summary=summary,
                               annotations=tuple(commands.annotations))


async def _supervise(
    task: StepTask, process: asyncio.subprocess.Process, emit: Emit, cancel: asyncio.Event, output_file: Path, script: Path,
    commands: WorkflowCommands | None,
) -> StepResult:
    """Stream the output of the started step until it ends, times out or is cancelled."""
    def stdout(stream: str, text: str) -> None:
        shown = commands.line(text) if commands is not None else (stream, text)
        if shown is not None:
            emit(*shown)

    readers = [
        asyncio.create_task(_pump(process.stdout, "stdout", stdout)),
        asyncio.create_task(_pump(process.stderr, "stderr", emit)),
    ]
    waiter = asyncio.create_task(process.wait())
    cancelled = asyncio.create_task(cancel.wait())
    done, _ = await asyncio.wait({waiter, cancelled}, timeout=task.timeout_seconds, return_when=asyncio.FIRST_COMPLETED)
    error: str | None = None
    if waiter not in done:
        error = "cancelled" if cancelled in done else f"timed out after {task.timeout_seconds:g} seconds"
        emit("system", f"step {error}: stopping its processes")
        await processes.stop_group(process)
    cancelled.cancel()
    # A background child may still hold the pipes open: give readers a moment, then kill the rest.
    _, pending = await asyncio.wait(readers, timeout=1.0)
    if pending:
        processes.signal_group(process.pid, signal.SIGKILL)
        await asyncio.wait(pending, timeout=1.0)
        for reader in pending:
            reader.cancel()
    else:
        processes.signal_group(process.pid, signal.SIGKILL)
    exit_code = process.returncode
    try:
        outputs = parse_output_file(output_file.read_text(errors="replace"))
    except OutputFileError as output_error:
        outputs, error = {}, error or str(output_error)
    finally:
        output_file.unlink(missing_ok=True)
    if error is None and exit_code != 0:
        error = f"process exited with code {exit_code}"
    return StepResult(exit_code=exit_code, error=error, outputs=outputs)


MAX_SUMMARY_BYTES = 1024 * 1024
"""GitHub's limit for one step's ``$GITHUB_STEP_SUMMARY``."""


@dataclass
class StepFiles:
    """The files a ``run:`` step writes for the runner, besides the job's env and path files:
    ``$GITHUB_OUTPUT`` (outputs), ``$GITHUB_STATE`` (state; no post steps read it here) and
    ``$GITHUB_STEP_SUMMARY`` (Markdown shown with the step)."""

    output: Path
    state: Path
    summary: Path

    @classmethod
    def create(cls, temp_dir: Path, stem: str) -> StepFiles:
        files = cls(temp_dir / f"{stem}.output", temp_dir / f"{stem}.state", temp_dir / f"{stem}.summary.md")
        for path in (files.output, files.state, files.summary):
            path.write_text("")
        return files

    def environment(self) -> dict[str, str]:
        return {"WATERFLOW_OUTPUT": str(self.output), "GITHUB_OUTPUT": str(self.output),
                "GITHUB_STATE": str(self.state), "WATERFLOW_STEP_SUMMARY": str(self.summary),
                "GITHUB_STEP_SUMMARY": str(self.summary)}

    def read_and_remove(self) -> str | None:
        """The step summary (None when empty); every file removed."""
        summary = None
        try:
            with self.summary.open("rb") as handle:
                data = handle.read(MAX_SUMMARY_BYTES + 1)
            text = data[:MAX_SUMMARY_BYTES].decode("utf-8", errors="replace")
            if len(data) > MAX_SUMMARY_BYTES:
                text += f"\n\n*(summary cut at {MAX_SUMMARY_BYTES // 1024} KiB)*"
            summary = text if text.strip() else None
        except OSError:
            pass
        for path in (self.output, self.state, self.summary):
            path.unlink(missing_ok=True)
        return summary


async def _pump(stream: asyncio.StreamReader | None, name: str, emit: Emit) -> None:
    assert stream is not None
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # line longer than the reader's limit: take what is there
            line = await stream.read(4 * MAX_LINE)
        if not line:
            return
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        emit(name, text if len(text) <= MAX_LINE else text[:MAX_LINE] + " …[line truncated]")


