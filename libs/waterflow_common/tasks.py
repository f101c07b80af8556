"""The job task: what the scheduler sends to a server group (or one agent) to run a job.

A job runs on one agent, as on a GitHub runner: its workspace, files, ``$WATERFLOW_ENV`` and
checked-out code carry from step to step. So the scheduler sends the whole job once and the
agent that takes it walks the steps itself, evaluating each step's ``if``, ``with``, script,
timeout, ``continue-on-error`` and retries with the same code the scheduler uses
(``steps.py``, ``contexts.py``). It publishes every step's events as it goes; the scheduler
records them and acts only when the agent hands the job back (``JobRan``): at its end, or at a
wait that must outlive the agent process (a ``sleep``, a long retry backoff), after which the job
resumes — from the step it stopped at, on the same agent — in a new job task.

Each job task is numbered (``task``, per job, across retries): its token proves its events and
logs (``signing.py``), and an event of a task the scheduler has withdrawn is ignored.
"""

from __future__ import annotations

import msgspec

from .messages import job_task_key
from .plan import JobPlan
from .state import JobState


class JobTask(msgspec.Struct, frozen=True, kw_only=True):
    """Run ``job`` from step ``from_step`` on one agent of ``job.runs_on``."""

    run_id: str
    job: JobState
    """The job as the scheduler knows it when sending: earlier steps' outputs and conclusions
    (for ``steps.*``), the matrix values, the agent it is pinned to, whether it was already
    stopped (``cancelled``/``error``: then only ``always()`` steps run). Attempt histories are
    left out."""
    plan: JobPlan
    contexts: dict[str, object]
    """The job's expression contexts (``contexts.job_contexts``: inputs, vars, the secrets its
    plan uses, github, the workflow env, needs, matrix)."""
    task: int
    from_step: int
    attempt: int
    """The attempt number of ``from_step``; a later step's first attempt is its last + 1."""
    checked: bool = False
    """The scheduler has already evaluated ``from_step``'s ``if`` (it held): run it."""
    tried: int = 0
    """Failed attempts of ``from_step`` so far that count against its ``retry:``."""
    timeout_minutes: float | None = None
    """A step's timeout when it sets none (the job's, else the workflow's)."""
    mask: list[str] = []
    """Secret values: replaced by *** in logs, outputs and errors."""
    token: str = ""
    """Proves this task's events and logs came from the agent it was given to (``signing.py``)."""

    @property
    def key(self) -> str:
        return job_task_key(self.run_id, self.job.id, self.task)

    @property
    def group(self) -> str:
        return self.job.runs_on


class _JobIdentity(msgspec.Struct, frozen=True):
    id: str


class JobTaskIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """The part of a :class:`JobTask` an agent needs to report on a task it cannot read in full
    (a newer scheduler's, a damaged one): enough to fail its first step with the reason."""

    run_id: str
    job: _JobIdentity
    task: int
    from_step: int
    attempt: int
    token: str


def for_agent(job: JobState) -> JobState:
    """``job`` as a job task carries it: without attempt histories (they can be long), nor the
    outputs of steps without an ``id`` (no expression can name them)."""
    return msgspec.structs.replace(job, instances=[], steps=[
        msgspec.structs.replace(s, attempts=[], outputs=s.outputs if s.id else {}) for s in job.steps
    ])
