"""Processes started by nodes: own process group, live output, killed on cancel or timeout.

Same rules as ``waterflow_agent.runner`` for ``run:`` steps (the whole tree is signalled, TERM
then KILL), but shaped for nodes: it returns the output and raises typed errors.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from waterflow_common.errors import NonRetryableError, RetryableError

from .. import processes

if TYPE_CHECKING:
    from .base import NodeContext, ProcessResult

MAX_LINE = 16 * 1024
MAX_CAPTURE = 4 * 1024 * 1024
"""stdout kept in memory for the caller; longer output is still streamed to the log."""


async def run_process(
    ctx: NodeContext,
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float | None,
    tail: int,
    stdin: bytes | None,
    quiet: bool,
) -> ProcessResult:
    from .base import ProcessResult

    if shutil.which(argv[0], path=env.get("PATH")) is None and not (cwd / argv[0]).is_file():
        # Said here: started through setpriv (processes.command), a missing command would only
        # show as setpriv's exit code.
        raise NonRetryableError(f"command not found: {argv[0]!r} (is it installed on this agent?)")
    try:
        cwd.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            *processes.command(argv), cwd=cwd, env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            limit=4 * MAX_LINE, **processes.spawn_options(),
        )
    except FileNotFoundError:
        raise NonRetryableError(f"command not found: {argv[0]!r} (is it installed on this agent?)") from None
    except (OSError, ValueError) as error:
        raise NonRetryableError(f"could not start {argv[0]!r}: {error}") from None

    last: deque[str] = deque(maxlen=max(tail, 1))
    captured: list[str] = []
    size = 0

    async def pump(stream: asyncio.StreamReader | None, name: str) -> None:
        nonlocal size
        assert stream is not None
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                raw = await stream.read(4 * MAX_LINE)
            if not raw:
                return
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if len(text) > MAX_LINE:
                text = text[:MAX_LINE] + " …[line truncated]"
            if name == "stdout" and size < MAX_CAPTURE:
                captured.append(text)
                size += len(text) + 1
            last.append(ctx.masker(text))
            if not quiet:
                ctx.log.line(name, text)

    processes.started(process.pid)
    readers = [asyncio.create_task(pump(process.stdout, "stdout")), asyncio.create_task(pump(process.stderr, "stderr"))]
    try:
        if stdin is not None:
            assert process.stdin is not None
            process.stdin.write(stdin)
            await process.stdin.drain()
            process.stdin.close()
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        ctx.log.system(f"{argv[0]} timed out after {timeout:g}s: stopping its processes")
        await processes.stop_group(process)
        raise RetryableError(f"{Path(argv[0]).name} timed out after {timeout:g} seconds") from None
    except asyncio.CancelledError:
        await processes.stop_group(process)
        raise
    finally:
        # A background child may keep the pipes open: read what is there, then kill the group.
        _, pending = await asyncio.wait(readers, timeout=1.0)
        processes.signal_group(process.pid, signal.SIGKILL)
        processes.finished(process.pid)
        for reader in pending:
            reader.cancel()
    assert process.returncode is not None
    return ProcessResult(exit_code=process.returncode, stdout="\n".join(captured), last_lines=list(last))
