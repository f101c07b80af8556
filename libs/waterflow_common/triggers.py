"""Triggers: a workflow registered once, started by its cron schedules and by webhooks.

A schedule is a JetStream message schedule (cron) in stream WF_TRIGGERS, held by NATS itself:
no Waterflow process keeps a timer, and any API replica turns a fire into a run (they share one
durable consumer). A scheduled fire's run id is derived from its stream sequence and a webhook
fire carries the id the API answered with, so a fire handled twice after a crash still starts
exactly one run.
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
    webhook_secret: str = ""
    """Signs webhook calls (``X-Waterflow-Signature-256: sha256=<HMAC of the body>``, as GitHub's
    ``X-Hub-Signature-256``): shown once, when the trigger is registered; never listed."""


SIGNATURE_HEADERS = ("X-Waterflow-Signature-256", "X-Hub-Signature-256")
"""Headers a signed webhook call may carry (ours, or GitHub's name for the same thing)."""


def webhook_signature(secret: str, body: bytes) -> str:
    """The signature header value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, given: str) -> bool:
    import hmac

    return bool(secret) and hmac.compare_digest(webhook_signature(secret, body), given.strip())


class TriggerFired(msgspec.Struct, frozen=True, kw_only=True):
    trigger_id: str
    by: Literal["schedule", "webhook"]
    inputs: dict[str, Any] = {}
    payload: Any = None
    """A webhook's whole JSON body: the run's ``github.event`` (data, never pasted into scripts)."""
    run_id: str | None = None
    """A webhook fire names its run in advance, so the API can answer the caller with the id
    (a fire handled twice still starts that one run). A schedule's fires, published by NATS
    from one stored message, have none: their run id comes from the fire's stream sequence."""


_CRON_FIELDS = (  # (name, lowest, highest, names for values)
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)


def cron_problem(cron: str) -> str | None:
    """What is wrong with a cron expression (five fields, or six with leading seconds), or None.

    Each field is ``*``, a value, a range ``a-b``, any of those with a step ``/n``, or a comma
    list of them; months and weekdays may be names (``JAN``, ``MON``). Values are checked
    against each field's range (a schedule NATS would refuse is refused here, with the reason).
    """
    if len(cron) > 200:
        return "a cron expression is at most 200 characters"
    fields = cron.split()
    if len(fields) not in (5, 6):
        return f"{len(fields)} fields; expected five (minute hour day-of-month month day-of-week) or six (seconds first)"
    specs = _CRON_FIELDS if len(fields) == 6 else _CRON_FIELDS[1:]
    for text, (name, low, high, names) in zip(fields, specs):
        for item in text.split(","):
            problem = _cron_item_problem(item, name, low, high, names)
            if problem:
                return problem
    return None


def _cron_item_problem(item: str, name: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    body, _, step = item.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
        return f"{name}: step {step!r} must be a positive number"
    if body in ("*", "?"):
        return None
    bounds = body.split("-")
    if len(bounds) > 2 or not all(bounds):
        return f"{name}: {item!r} is not a value, a range 'a-b' or '*'"
    values = []
    for bound in bounds:
        if bound.isdigit():
            value = int(bound)
        elif bound.upper() in names:
            value = names.index(bound.upper()) + (1 if name == "month" else 0)
        else:
            return f"{name}: {bound!r} is not a number" + (f" or one of {', '.join(names)}" if names else "")
        if not low <= value <= high:
            return f"{name}: {value} is out of range ({low}-{high})"
        values.append(value)
    if len(values) == 2 and values[0] > values[1]:
        return f"{name}: the range {item!r} runs backwards"
    return None


def nats_cron(cron: str) -> str:
    """NATS schedules take six fields (seconds first); workflows write GitHub's five."""
    fields = cron.split()
    return " ".join(["0", *fields]) if len(fields) == 5 else " ".join(fields)


def fired_run_id(fired_at: datetime, sequence: int) -> str:
    """One run per fire, whichever API replica handles it and however often: derived from the
    fire message's stream time and sequence (still sortable by time like other run ids)."""
    return f"r{int(fired_at.timestamp() * 1000):x}{sequence:08x}"
