"""The current state of a run: a projection of its events, kept in the ``wf_runs`` KV bucket.

Only the scheduler changes it (with revision checks, so several schedulers are safe); the API
writes the first version at submit and reads it for ``GET /v1/workflows/{id}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from .plan import Plan

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
StepStatus = Literal[
    "pending", "dispatched", "running", "succeeded", "failed", "skipped", "cancelled"
]
TERMINAL = frozenset({"succeeded", "failed", "skipped", "cancelled"})


class Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    """A message the scheduler decided to publish: kept in the state until published.

    Writing the decision and publishing it cannot be one atomic act; keeping it here means a
    scheduler that dies between the two leaves the decision to whoever handles the run next.
    """

    subject: str
    msg_id: str
    data: bytes
    at: datetime


class StepState(msgspec.Struct, kw_only=True):
    index: int
    name: str
    status: StepStatus = "pending"
    attempt: int = 0
    agent: str | None = None
    exit_code: int | None = None
    error: str | None = None
    outputs: dict[str, str] = {}
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobState(msgspec.Struct, kw_only=True):
    id: str
    name: str
    runs_on: str
    needs: tuple[str, ...] = ()
    status: JobStatus = "pending"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: list[StepState] = []


class RunState(msgspec.Struct, kw_only=True):
    run_id: str
    workflow: str
    status: RunStatus = "queued"
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    jobs: dict[str, JobState] = {}
    outbox: list[Outgoing] = []

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def initial_state(run_id: str, plan: Plan, created_at: datetime) -> RunState:
    """The state of a run that has just been accepted: every job and step pending."""
    return RunState(
        run_id=run_id,
        workflow=plan.name,
        created_at=created_at,
        jobs={
            job.id: JobState(
                id=job.id,
                name=job.name,
                runs_on=job.runs_on,
                needs=job.needs,
                steps=[StepState(index=s.index, name=s.name) for s in job.steps],
            )
            for job in plan.jobs.values()
        },
    )


_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(RunState)
_plan_decoder = msgspec.json.Decoder(Plan)


def encode_state(state: RunState) -> bytes:
    return _encoder.encode(state)


def decode_state(data: bytes) -> RunState:
    return _state_decoder.decode(data)


def encode_plan(plan: Plan) -> bytes:
    return _encoder.encode(plan)


def decode_plan(data: bytes) -> Plan:
    return _plan_decoder.decode(data)
