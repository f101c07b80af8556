"""The Temporal side of the comparison: N sequential activities, each running one shell command.

Kept in its own module because Temporal's workflow sandbox re-imports the workflow's module.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def run_command(command: str) -> tuple[float, float]:
    """Run ``command`` with the shell, like a Waterflow ``run:`` step; (start, end) Unix times."""
    started = time.time()
    process = await asyncio.create_subprocess_shell(
        command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"exit {process.returncode}: {output[-200:]!r}")
    return started, time.time()


@workflow.defn
class SequentialSteps:
    @workflow.run
    async def run(self, command: str, steps: int) -> list[tuple[float, float]]:
        times = []
        for _ in range(steps):
            times.append(await workflow.execute_activity(
                run_command, command, start_to_close_timeout=timedelta(minutes=5),
            ))
        return times
