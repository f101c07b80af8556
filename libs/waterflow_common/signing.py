"""Which events the scheduler believes: every event it acts on carries a ``proof``.

Agents are untrusted. NATS permissions keep an agent to its own groups' tasks, but any publisher
on the events subjects could otherwise claim "step succeeded" for a run it never saw (and have
its forged outputs pasted into the next job's script), or plant a message schedule that keeps
injecting events. So the scheduler applies an event only if its proof checks out:

- events from the services (api: ``run.created``, cancel and retry requests; scheduler: timers,
  ``run.unblocked``, lost-agent failures) carry ``HMAC(key, msg_id)``; the key is random, made
  once per installation and kept in the KV bucket ``wf_keys``, which agent credentials cannot read;
- each job task carries a token, ``HMAC(key, "task:" + task key)``, seen only by the agent the
  task was delivered to (agents cannot read other groups' tasks, the run state or the event
  stream); that agent's events about the job (``step.started`` / ``succeeded`` / ``failed`` /
  ``skipped`` / ``retrying``, ``job.ran``) name the task and carry ``HMAC(token, msg_id)``. The
  proof is published, the token never is, so reading an event does not help forge the next one.

An event that fails the check is dropped and logged as ``security.forged_event``.

Log batches are bound the same way: the agent signs each ``LogBatch`` with the task's token, and
the API (which reads logs) shows only batches whose proof checks out for the run, job, step and
attempt they claim and that are stored under that run, so an agent cannot add lines to a run it
was not given. One HMAC per batch (a batch is up to 256 lines) costs nothing measurable.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError

from . import subjects
from .messages import EventBase, JobRan, LogBatch, StepFailed, StepRetrying, StepSkipped, StepStarted, StepSucceeded, job_task_key

__all__ = ["AGENT_EVENTS", "Signer", "load_signer", "sign_log_batch", "sign_with_token"]

KEY_NAME = "events"
AGENT_EVENTS = (StepStarted, StepSucceeded, StepFailed, StepSkipped, StepRetrying, JobRan)
"""Events an agent publishes about a job task it was given (proved with the task's token when
they name a task; the scheduler's own, with ``task`` 0, with the key)."""


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:40]


def sign_with_token(token: str, event: EventBase) -> EventBase:
    """The agent's side: ``event`` with its proof from the task's token."""
    return msgspec.structs.replace(event, proof=_mac(token.encode(), event.msg_id()))


def sign_log_batch(token: str, batch: LogBatch) -> LogBatch:
    """The agent's side: ``batch`` with its proof from the task's token."""
    return msgspec.structs.replace(batch, proof=_mac(token.encode(), batch.msg_id()))


class Signer:
    """Signs and checks events with the installation's key (services only)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def task_token(self, task_key: str) -> str:
        return _mac(self._key, f"task:{task_key}")

    def sign(self, event: EventBase) -> EventBase:
        """A service's event, proved with the key; an agent event, as the task's agent would."""
        if isinstance(event, AGENT_EVENTS) and event.task:
            return sign_with_token(self.task_token(job_task_key(event.run_id, event.job_id, event.task)), event)
        return msgspec.structs.replace(event, proof=_mac(self._key, event.msg_id()))

    def verify_log_batch(self, batch: LogBatch) -> bool:
        """Did the agent that was given this step attempt write ``batch``?"""
        if not batch.proof or not batch.task:
            return False
        task_key = job_task_key(batch.run_id, batch.job_id, batch.task)
        expected = _mac(self.task_token(task_key).encode(), batch.msg_id())
        return hmac.compare_digest(batch.proof, expected)

    def verify(self, event: EventBase) -> bool:
        proof = getattr(event, "proof", "")
        if not proof:
            return False
        return hmac.compare_digest(proof, self.sign(event).proof)  # type: ignore[attr-defined]


async def load_signer(js: JetStreamContext) -> Signer:
    """The installation's key from KV ``wf_keys``, made by whichever service comes first."""
    kv = await js.key_value(subjects.KEYS_BUCKET)
    try:
        entry = await kv.get(KEY_NAME)
        if entry.value:
            return Signer(entry.value)
    except (KeyNotFoundError, NotFoundError):
        pass
    try:
        await kv.create(KEY_NAME, secrets.token_bytes(32))
    except KeyWrongLastSequenceError:
        pass  # another service made it first: use theirs
    entry = await kv.get(KEY_NAME)
    assert entry.value
    return Signer(entry.value)
