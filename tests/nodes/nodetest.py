"""Helpers shared by the node tests (imported as ``nodetest``; tests/ is not a package)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waterflow_agent.executor import StepResult, execute_step
from waterflow_agent.nodes import NodeRegistry
from waterflow_common.messages import StepTask
from waterflow_common.plan import StepPlan

BUSYBOX = "localhost/busybox:latest"


@dataclass
class StepRun:
    result: StepResult
    lines: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(text for _, text in self.lines)


@dataclass
class NodeRunner:
    """Runs steps like the agent does, in one job workspace."""

    workspace: Path
    temp_dir: Path
    registry: NodeRegistry
    env: dict[str, str]
    js: Any = None
    run_id: str = "rtest"
    job_id: str = "job"
    _index: int = 0

    async def __call__(self, uses: str | None = None, with_: dict[str, Any] | None = None, *, run: str | None = None,
                       timeout: float | None = None, secrets: dict[str, str] | None = None,
                       cancel: asyncio.Event | None = None, working_directory: str | None = None,
                       env: dict[str, str] | None = None, mask: list[str] | None = None) -> StepRun:
        self._index += 1
        step = StepPlan(index=self._index, name=f"step {self._index}", uses=uses, run=run, with_=with_ or {},
                        working_directory=working_directory)
        task = StepTask(run_id=self.run_id, job_id=self.job_id, step=step, attempt=1, group="local",
                        env=env or {}, timeout_seconds=timeout, mask=mask or [])
        lines: list[tuple[str, str]] = []
        result = await execute_step(
            task, workspace=self.workspace, temp_dir=self.temp_dir, env=dict(self.env),
            emit=lambda stream, text: lines.append((stream, text)), cancel=cancel or asyncio.Event(),
            js=self.js, registry=self.registry, secrets=secrets,
        )
        return StepRun(result, lines)
