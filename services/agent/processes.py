"""Step processes: each in a process group of its own, and none outlives its agent.

A step's script runs in a new session (so a timeout or a cancel can kill everything it
started with one ``killpg``) and asks Linux to kill it if the agent dies (``PR_SET_PDEATHSIG``).
That reaches the script's shell, not what the shell started; so each running group is also
recorded as a file under ``<work-dir>/_running``, and an agent starting on that work dir kills
the groups a killed predecessor left behind before it takes any task. Without this, an agent
killed with ``kill -9`` left its step running while the step was delivered again elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from waterflow_common.log import get_logger

log = get_logger("waterflow.agent.processes")

_SETPRIV = shutil.which("setpriv")
_PDEATHSIG: tuple[str, ...] = (_SETPRIV, "--pdeathsig", "KILL", "--") if _SETPRIV else ()
KILL_GRACE_SECONDS = 5.0
"""Seconds a stopped step's processes get between SIGTERM and SIGKILL."""
_registry: Path | None = None


def use_registry(work_dir: Path) -> int:
    """Record step groups under ``work_dir``; kill the groups a previous agent left there.
    Returns how many were killed."""
    global _registry
    _registry = Path(work_dir) / "_running"
    _registry.mkdir(parents=True, exist_ok=True)
    killed = 0
    for entry in _registry.iterdir():
        try:
            pgid = int(entry.name)
        except ValueError:
            continue
        try:
            os.killpg(pgid, signal.SIGKILL)
            killed += 1
            log.warning("step.orphan_killed", pgid=pgid)
        except (ProcessLookupError, PermissionError):
            pass
        entry.unlink(missing_ok=True)
    return killed


def command(argv: Sequence[str]) -> list[str]:
    """The argv that runs ``argv`` so that Linux kills it when the agent dies: through
    ``setpriv --pdeathsig KILL`` (util-linux) where it exists. Cheaper than a ``preexec_fn``,
    which forces a full fork of the agent for every step instead of a vfork."""
    return [*_PDEATHSIG, *argv]


def spawn_options() -> dict[str, Any]:
    """Keyword arguments for ``asyncio.create_subprocess_exec`` of a step's process."""
    return {"start_new_session": True}


def started(pid: int) -> None:
    if _registry is not None:
        try:
            (_registry / str(pid)).touch()
        except OSError:
            pass


def finished(pid: int) -> None:
    if _registry is not None:
        (_registry / str(pid)).unlink(missing_ok=True)


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the step's whole process group (its pid is the group id)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def stop_group(process: asyncio.subprocess.Process) -> None:
    """Stop a step (timeout, cancel): SIGTERM to its group, SIGKILL after the grace period."""
    signal_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(process.wait())), KILL_GRACE_SECONDS)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        signal_group(process.pid, signal.SIGKILL)
        await process.wait()
