"""The node interface: what a ``uses: name@version`` step runs on an agent.

A node is a class with a name, a version, a JSON Schema for its ``with:`` parameters, the outputs
it declares and one coroutine, :meth:`Node.execute`. The compiler checks ``with:`` against the
schema before a run starts (STYLE §6); the agent validates again, fills schema defaults and calls
``execute(ctx, params)``. The node returns its outputs (``dict[str, str]``) or raises:

* :class:`~waterflow_common.errors.RetryableError` — another attempt may help (network blip,
  busy resource, a command that failed); the step's ``retry:`` policy decides.
* :class:`~waterflow_common.errors.NonRetryableError` — no retry will help (bad parameters,
  missing file); the scheduler fails the step at once.

Any other exception is a bug in the node: the step fails (not retried) with the exception's type
and message, and the agent keeps running.

A minimal node::

    from waterflow_agent.nodes import Node, NodeContext

    class Greet(Node):
        name = "greet"
        version = "v1"
        schema = {"type": "object", "properties": {"who": {"type": "string", "default": "world"}}}
        outputs = {"greeting": "the sentence it said"}

        async def execute(self, ctx: NodeContext, params: dict) -> dict[str, str]:
            ctx.log.info(f"hello {params['who']}")
            return {"greeting": f"hello {params['who']}"}

Hooks are no-op methods (STYLE §5): override only what you need.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from waterflow_common.errors import NonRetryableError, RetryableError
from waterflow_common.secrets import Masker

Emit = Callable[[str, str], None]
"""emit(stream, text) with stream 'stdout', 'stderr' or 'system' — the step's live log."""


class CommandFailed(RetryableError):
    """A command a node ran exited with a non-zero code (retryable: the step's policy decides).

    Carries the exit code and the outputs gathered so far, so a failed step still shows them.
    """

    def __init__(self, message: str, *, exit_code: int | None, outputs: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.outputs = dict(outputs or {})


class NodeLogger:
    """The step's live log as a node sees it: every line is masked, then streamed at once."""

    def __init__(self, emit: Emit, masker: Masker) -> None:
        self._emit = emit
        self._mask = masker

    def line(self, stream: str, text: str) -> None:
        for part in str(text).splitlines() or [""]:
            self._emit(stream, self._mask(part))

    def info(self, text: str) -> None:
        """A line of normal output (the ``stdout`` stream)."""
        self.line("stdout", text)

    def warning(self, text: str) -> None:
        """A line on the ``stderr`` stream."""
        self.line("stderr", text)

    error = warning

    def system(self, text: str) -> None:
        """A line from Waterflow itself about the step (progress, decisions)."""
        self.line("system", text)


@dataclass
class NodeContext:
    """Everything a node may use while it runs. Built by the agent for one step attempt."""

    log: NodeLogger
    env: dict[str, str]
    """The step's environment (agent env without WATERFLOW_* settings, Waterflow's variables,
    the workflow's env). Pass it to processes the node starts."""
    workdir: Path
    """Where the step works: the job workspace, or ``working-directory`` inside it."""
    workspace: Path
    """The job's workspace (shared by its steps on this agent)."""
    temp_dir: Path
    """A scratch directory for this agent; remove what you create."""
    cancel: asyncio.Event
    """Set when the step is cancelled or the agent shuts down. The agent also cancels the
    ``execute`` task, so a node needs to watch this only in its own threads."""
    deadline: float | None = None
    """``time.monotonic()`` value by which the step must end, or None (no timeout)."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Secret values by name; their values are masked in the log, errors and outputs."""
    masker: Masker = field(default_factory=Masker)
    run_id: str = ""
    job_id: str = ""
    step_index: int = 0
    attempt: int = 1
    js: Any = None
    """The agent's JetStream context (nats.js.JetStreamContext) for nodes that use NATS, such as
    file transfer through the Object Store; None when the node runs outside an agent."""
    allowed_roots: tuple[Path, ...] = ()
    """Directories file nodes may read and write; empty means (workspace, temp_dir)."""
    env_file: Path | None = None
    """The job's env file (``$WATERFLOW_ENV``): ``KEY=value`` lines merged into later steps' env."""

    def mask(self, value: str) -> None:
        """Treat ``value`` as a secret from now on (hide it in every later log line)."""
        self.masker.add(value)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without a deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def timeout(self, requested: float | None) -> float | None:
        """The smaller of a node's own timeout and the time left before the step's deadline."""
        left = self.remaining()
        if requested is None:
            return left
        return requested if left is None else min(requested, left)

    def path(self, relative: str, *, must_exist: bool = False) -> Path:
        """Resolve a user-given path against ``workdir``; refuse one outside the allowed roots.

        Raises NonRetryableError for ``../../etc/passwd`` or a symlink that leads outside.
        """
        candidate = (self.workdir / relative).resolve()
        roots = self.allowed_roots or (self.workspace, self.temp_dir)
        if not any(candidate == root.resolve() or candidate.is_relative_to(root.resolve()) for root in roots):
            shown = ", ".join(str(r) for r in roots)
            raise NonRetryableError(f"path {relative!r} is outside the allowed directories ({shown})")
        if must_exist and not candidate.exists():
            raise NonRetryableError(f"path {relative!r} does not exist (looked at {candidate})")
        return candidate

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        tail: int = 20,
        stdin: bytes | None = None,
        quiet: bool = False,
    ) -> ProcessResult:
        """Run a command in its own process group, streaming its output to the log.

        The whole process tree is killed on cancel or timeout (RetryableError on timeout). Returns
        the exit code, the full stdout and the last ``tail`` lines of output; it does not raise
        for a non-zero exit code (see :class:`CommandFailed`).
        """
        from .process import run_process

        return await run_process(
            self, argv, cwd=cwd or self.workdir, env=dict(env if env is not None else self.env),
            timeout=self.timeout(timeout), tail=tail, stdin=stdin, quiet=quiet,
        )


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int
    stdout: str
    last_lines: list[str]


class Node:
    """Base class of every node. Subclasses set the class attributes and implement ``execute``."""

    name: ClassVar[str] = ""
    """What ``uses:`` names, e.g. ``http`` or ``docker/compose-up`` (letters, digits, ``-``, ``/``)."""
    version: ClassVar[str] = "v1"
    """``v`` + major number. Bump it when a change would break existing workflows."""
    description: ClassVar[str] = ""
    schema: ClassVar[dict[str, Any]] = {"type": "object", "additionalProperties": False}
    """JSON Schema (2020-12) of the ``with:`` mapping. Top-level ``default`` values are filled in
    before ``execute``; use ``additionalProperties: false`` so a typo is an error."""
    outputs: ClassVar[dict[str, str]] = {}
    """Output name -> description, for docs, ``waterflow node info`` and the compiler."""

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        """Do the work; return the outputs. Raise RetryableError / NonRetryableError on failure."""
        raise NotImplementedError(f"node {self.name}@{self.version} does not implement execute()")

    async def cleanup(self, ctx: NodeContext, params: dict[str, Any]) -> None:
        """Hook: runs after ``execute`` whatever happened (also on cancel). Default: nothing."""

    @classmethod
    def ref(cls) -> str:
        return f"{cls.name}@{cls.version}"


def string_outputs(values: Mapping[str, Any]) -> dict[str, str]:
    """Outputs are strings (as in GitHub); ``True`` becomes ``true``, dicts/lists become JSON."""
    import json

    result: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, str):
            result[str(key)] = value
        elif isinstance(value, bool):
            result[str(key)] = "true" if value else "false"
        elif value is None:
            result[str(key)] = ""
        elif isinstance(value, (int, float)):
            result[str(key)] = str(value)
        else:
            result[str(key)] = json.dumps(value, sort_keys=True, default=str)
    return result


__all__ = [
    "CommandFailed",
    "Emit",
    "Masker",
    "Node",
    "NodeContext",
    "NodeLogger",
    "NonRetryableError",
    "ProcessResult",
    "RetryableError",
    "string_outputs",
]
