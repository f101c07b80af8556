"""Triggers: a workflow registered once, started by its cron schedules and by webhooks.

A schedule is a JetStream message schedule (cron) in stream WF_TRIGGERS, held by NATS itself:
no Waterflow process keeps a timer, and any API replica turns a fire into a run (they share one
durable consumer). The run id is derived from the fire's stream sequence, so a fire handled twice
after a crash still starts exactly one run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from .messages import utcnow


class Trigger(msgspec.Struct, kw_only=True):
    id: str
    name: str
    source: str
    filename: str = "workflow.yml"
    workflows: dict[str, str] = {}
    """Files the workflow calls (job-level ``uses:``), as submitted."""
    inputs: dict[str, Any] = {}
    """Inputs every run gets (a webhook's inputs override them)."""
    crons: list[str] = []
    created_at: datetime = msgspec.field(default_factory=utcnow)


class TriggerFired(msgspec.Struct, frozen=True, kw_only=True):
    trigger_id: str
    by: Literal["schedule", "webhook"]
    inputs: dict[str, Any] = {}
    payload: Any = None
    """A webhook's whole JSON body: the run's ``github.event`` (data, never pasted into scripts)."""


def nats_cron(cron: str) -> str:
    """NATS schedules take six fields (seconds first); workflows write GitHub's five."""
    fields = cron.split()
    return " ".join(["0", *fields]) if len(fields) == 5 else " ".join(fields)


def fired_run_id(fired_at: datetime, sequence: int) -> str:
    """One run per fire, whichever API replica handles it and however often: derived from the
    fire message's stream time and sequence (still sortable by time like other run ids)."""
    return f"r{int(fired_at.timestamp() * 1000):x}{sequence:08x}"
