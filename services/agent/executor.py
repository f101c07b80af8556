"""Running one step attempt, whatever its kind: ``run:`` through the runner, ``uses:`` through a node.

The agent service calls :func:`execute_step` and publishes what it returns. Every failure becomes
data here — a :class:`StepResult` with an error text and a ``retryable`` flag the scheduler
honours — never an exception: a broken node or plugin fails its step, not the agent.

Both kinds share the job env file (``$WATERFLOW_ENV``, also ``$GITHUB_ENV``): ``KEY=value`` lines
written by one step (or by the ``env/set`` node) are in the environment of the job's later steps
on this agent; the step's own ``env:`` still wins.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
from waterflow_common import hashfiles
from waterflow_common.errors import NonRetryableError, RetryableError, WaterflowError
from waterflow_common.log import get_logger
from waterflow_common.messages import StepTask

from .nodes.base import (
    CommandFailed,
    Masker,
    Node,
    NodeContext,
    NodeLogger,
    string_outputs,
)
from .nodes.registry import NodeRegistry, agent_registry
from .outputs import OutputFileError, parse_output_file
from .commands import WorkflowCommands
from .runner import Emit, run_script
from .runner import StepResult as _RunnerResult

log = get_logger("waterflow.agent.executor")

CANCEL_GRACE_SECONDS = 10.0
"""How long a cancelled node may take to clean up before the step is reported anyway."""


@dataclass
class StepResult(_RunnerResult):
    retryable: bool = True
    """False when no retry can help (unknown node, invalid ``with:``, NonRetryableError)."""


async def execute_step(
    task: StepTask,
    *,
    workspace: Path,
    temp_dir: Path,
    env: dict[str, str],
    emit: Emit,
    cancel: asyncio.Event,
    js: Any = None,
    registry: NodeRegistry | None = None,
    secrets: Mapping[str, str] | None = None,
    masker: Masker | None = None,
) -> StepResult:
    """Run one step attempt to completion, timeout or cancel; never raises for a step failure.

    ``registry`` defaults to this process's registry without a plugin directory; ``js`` (the
    JetStream context) is needed by the file transfer nodes; ``secrets`` are masked in the log;
    ``masker`` is the step log's (a ``::add-mask::`` then hides a value everywhere at once).
    """
    masker = masker or Masker(task.mask)
    for value in (secrets or {}).values():
        masker.add(value)
    task, env = _with_file_hashes(task, env, workspace)
    env_file, path_file = job_env_file(temp_dir, task), job_path_file(temp_dir, task)
    env = {**env, **read_env_file(env_file), **task.env,
           "WATERFLOW_ENV": str(env_file), "GITHUB_ENV": str(env_file),
           "WATERFLOW_PATH": str(path_file), "GITHUB_PATH": str(path_file)}
    env["PATH"] = with_job_path(path_file, env.get("PATH", ""))
    if task.step.run is not None:
        debug = any(env.get(name, "").lower() == "true" for name in ("ACTIONS_STEP_DEBUG", "WATERFLOW_STEP_DEBUG"))
        commands = WorkflowCommands(masker=masker, debug=debug)
        result = await run_script(task, workspace=workspace, temp_dir=temp_dir, env=env, emit=emit, cancel=cancel,
                                  commands=commands)
        return StepResult(exit_code=result.exit_code, error=result.error, outputs=result.outputs, retryable=result.started,
                          annotations=result.annotations, summary=result.summary)
    return await _execute_node(task, workspace=workspace, temp_dir=temp_dir, env=env, env_file=env_file, emit=emit,
                               cancel=cancel, js=js, registry=registry or agent_registry(None), secrets=secrets or {},
                               masker=masker)


def job_path_file(temp_dir: Path, task: StepTask) -> Path:
    """``$GITHUB_PATH`` of the job: directories a step adds for the job's later steps."""
    return temp_dir / f"{task.run_id}-{task.job_id}.path"


def with_job_path(path_file: Path, path: str) -> str:
    """``PATH`` with the job's added directories first (the latest added first, as on GitHub)."""
    try:
        added = [line.strip() for line in path_file.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return path
    return os.pathsep.join([*reversed(added), path]) if added else path


def _with_file_hashes(task: StepTask, env: dict[str, str], workspace: Path) -> tuple[StepTask, dict[str, str]]:
    """Compute the ``hashFiles()`` the scheduler left for the agent (see waterflow_common.hashfiles)."""
    step = task.step
    if not any(hashfiles.MARK in text for text in (step.run or "", str(step.with_), *task.env.values())):
        return task, env
    step = msgspec.structs.replace(step, run=hashfiles.resolve(step.run, workspace), with_=hashfiles.resolve(dict(step.with_), workspace))
    task = msgspec.structs.replace(task, step=step, env=hashfiles.resolve(dict(task.env), workspace))
    return task, hashfiles.resolve(env, workspace)


def job_env_file(temp_dir: Path, task: StepTask) -> Path:
    return temp_dir / f"{task.run_id}-{task.job_id}.env"


def read_env_file(path: Path) -> dict[str, str]:
    try:
        return parse_output_file(path.read_text(errors="replace"))
    except FileNotFoundError:
        return {}
    except OutputFileError as error:
        log.warning("env_file.invalid", path=str(path), error=str(error))
        return {}


def prepare_params(node: type[Node], given: Mapping[str, Any]) -> dict[str, Any]:
    """``with:`` plus the schema's top-level defaults, validated; NonRetryableError listing every
    problem (``with.url: ...``) if it does not fit."""
    params = dict(given)
    for key, spec in (node.schema.get("properties") or {}).items():
        if key not in params and isinstance(spec, dict) and "default" in spec:
            params[key] = spec["default"]
    validator = jsonschema.Draft202012Validator(node.schema)
    problems = sorted(validator.iter_errors(params), key=lambda e: [str(p) for p in e.absolute_path])
    if problems:
        lines = [f"with{''.join(f'.{p}' for p in problem.absolute_path)}: {problem.message}" for problem in problems]
        raise NonRetryableError(f"invalid parameters for {node.ref()}: " + "; ".join(lines))
    return params


async def _execute_node(
    task: StepTask,
    *,
    workspace: Path,
    temp_dir: Path,
    env: dict[str, str],
    env_file: Path,
    emit: Emit,
    cancel: asyncio.Event,
    js: Any,
    registry: NodeRegistry,
    secrets: Mapping[str, str],
    masker: Masker,
) -> StepResult:
    step = task.step
    uses = step.uses or ""
    try:
        entry = registry.resolve(uses)
        params = prepare_params(entry.node, step.with_)
        node = entry.node()
    except NonRetryableError as error:
        emit("system", masker(str(error)))
        return StepResult(exit_code=None, error=masker(str(error)), retryable=False)
    except Exception as error:  # a plugin whose constructor fails: its bug, this step's failure
        message = f"node {uses!r} could not be created: {type(error).__name__}: {masker(str(error))}"
        emit("system", message)
        return StepResult(exit_code=None, error=message, retryable=False)
    workdir = workspace / step.working_directory if step.working_directory else workspace
    workdir.mkdir(parents=True, exist_ok=True)
    temp_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + task.timeout_seconds if task.timeout_seconds else None
    ctx = NodeContext(
        log=NodeLogger(emit, masker), env=env, workdir=workdir, workspace=workspace, temp_dir=temp_dir,
        cancel=cancel, deadline=deadline, secrets=dict(secrets), masker=masker, run_id=task.run_id,
        job_id=task.job_id, step_index=step.index, attempt=task.attempt, js=js, env_file=env_file,
    )
    emit("system", f"node {entry.node.ref()} ({entry.source})")
    running = asyncio.create_task(node.execute(ctx, params))
    stopped = asyncio.create_task(cancel.wait())
    try:
        done, _ = await asyncio.wait({running, stopped}, timeout=ctx.remaining(), return_when=asyncio.FIRST_COMPLETED)
        if running not in done:
            reason = "cancelled" if stopped in done else f"timed out after {task.timeout_seconds:g} seconds"
            emit("system", f"step {reason}: stopping the node")
            running.cancel()
            await asyncio.wait({running}, timeout=CANCEL_GRACE_SECONDS)
            # A timeout may pass on the next attempt; a cancel is not retried by the scheduler anyway.
            return StepResult(exit_code=None, error=reason, retryable=True)
        return _result(entry.node, running, masker)
    finally:
        stopped.cancel()
        try:
            await node.cleanup(ctx, params)
        except Exception as error:  # a failing hook must not hide the step's own result
            log.warning("node.cleanup_failed", node=entry.node.ref(), error=f"{type(error).__name__}: {error}")


def _result(node: type[Node], finished: asyncio.Task[dict[str, str]], masker: Masker) -> StepResult:
    error = finished.exception()
    if error is None:
        outputs = finished.result()
        if not isinstance(outputs, Mapping):
            return StepResult(exit_code=None, retryable=False,
                              error=f"node {node.ref()} returned {type(outputs).__name__}, expected a dict of outputs")
        return StepResult(exit_code=0, outputs={k: masker(v) for k, v in string_outputs(outputs).items()})
    message = masker(str(error) or type(error).__name__)
    partial = {k: masker(v) for k, v in string_outputs(getattr(error, "outputs", None) or {}).items()}
    if isinstance(error, CommandFailed):
        return StepResult(exit_code=error.exit_code, error=message, outputs=partial, retryable=True)
    if isinstance(error, RetryableError):
        return StepResult(exit_code=None, error=message, outputs=partial, retryable=True)
    if isinstance(error, WaterflowError):  # NonRetryableError, UserError: fixing the input is needed
        return StepResult(exit_code=None, error=message, outputs=partial, retryable=False)
    log.error("node.crashed", node=node.ref(), error=f"{type(error).__name__}: {error}", exc_info=error)
    return StepResult(exit_code=None, retryable=False,
                      error=f"node {node.ref()} failed unexpectedly: {type(error).__name__}: {message} (a bug in the node)")
