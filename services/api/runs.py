"""What the API does with runs, apart from HTTP: submit, read state, history and logs.

Submitting is the one place a run comes into being: compile (through a compiler service), store
the plan, store the initial state, append ``run.created``. If any of these fails the earlier ones
are undone, so a caller told "503, try again" leaves no half-created run behind.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.errors import NoRespondersError, TimeoutError as NatsTimeoutError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from waterflow_common import subjects
from waterflow_common.bus import publish_event
from waterflow_common.diagnostics import Diagnostic
from waterflow_common.inputs import resolve_inputs
from waterflow_common.log import get_logger
from waterflow_common.messages import (
    CompileReply,
    CompileRequest,
    Event,
    LogBatch,
    RunCancelRequested,
    RunCreated,
    RunRetryRequested,
    decode_event,
    encode,
)
from waterflow_common.plan import Plan
from waterflow_common.signing import load_signer
from waterflow_common.runstore import RunStore
from waterflow_common.state import RunState, decode_plan, state_of
from waterflow_common.streams import read_stored

log = get_logger("waterflow.api.runs")
PLAN_CACHE_SIZE = 512
_reply_decoder = msgspec.json.Decoder(CompileReply)
_log_decoder = msgspec.json.Decoder(LogBatch)


class ServiceUnavailable(Exception):
    """A service the request needs did not answer; the client may retry."""


class InvalidInputs(Exception):
    """The inputs given at submit do not match the workflow's declared inputs."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Conflict(Exception):
    """The request does not fit the run's current status (e.g. cancel a finished run)."""


@dataclass
class Submitted:
    run_id: str | None
    diagnostics: list[Diagnostic]


def new_run_id() -> str:
    """Sortable by creation time, unique without coordination, safe as a subject token."""
    return f"r{int(time.time() * 1000):x}{secrets.token_hex(4)}"


class Runs:
    def __init__(self, nc: Client, compile_timeout: float) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.compile_timeout = compile_timeout

    ready = False
    """True once :meth:`open` has succeeded (streams provisioned, key loaded): until then the API
    answers 503 and its health check says it is starting."""

    async def open(self) -> None:
        self.signer = await load_signer(self.js)
        self.store = RunStore(self.nc)
        self.plans_kv = await self.js.key_value(subjects.PLANS_BUCKET)
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self.ready = True

    async def compile(self, source: str, filename: str, workflows: dict[str, str] | None = None) -> CompileReply:
        """Ask a compiler service; while none is subscribed (starting, restarting), keep asking
        until ``compile_timeout`` rather than failing the user's request at once."""
        request = encode(CompileRequest(source=source, filename=filename, workflows=workflows or {}))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.compile_timeout
        while True:
            remaining = deadline - loop.time()
            try:
                reply = await self.nc.request(subjects.COMPILE, request, timeout=max(remaining, 0.1))
                return _reply_decoder.decode(reply.data)
            except (NoRespondersError, NatsTimeoutError) as error:
                if loop.time() + 0.1 >= deadline:
                    raise ServiceUnavailable("no compiler service answered; is `waterflow compiler` running?") from error
                await asyncio.sleep(0.1)

    async def submit(
        self, source: str, filename: str, inputs: dict[str, object] | None = None, workflows: dict[str, str] | None = None,
        run_id: str | None = None, event_name: str = "api", event: object = None,
    ) -> Submitted:
        """``workflows``: the files the workflow calls with job-level ``uses:``, by reference.
        ``run_id``: given by a caller that may submit the same run twice (a trigger fire): the
        second submit then finds the run and does nothing."""
        reply = await self.compile(source, filename, workflows)
        diagnostics = [msgspec.convert(d, Diagnostic) for d in reply.diagnostics]
        if reply.plan is None:
            return Submitted(run_id=None, diagnostics=diagnostics)
        plan = decode_plan(reply.plan)
        values, problems = resolve_inputs(plan.inputs, inputs or {})
        if problems:
            raise InvalidInputs(problems)
        if run_id is not None and await self.store.load_header(run_id) is not None:
            return Submitted(run_id=run_id, diagnostics=diagnostics)
        given_id = run_id is not None
        run_id = run_id or new_run_id()
        created = self.signer.sign(RunCreated(run_id=run_id, workflow=plan.name, inputs=values,
                                              event_name=event_name, event=event))
        try:
            await self.plans_kv.create(run_id, reply.plan)
        except KeyWrongLastSequenceError:
            if not given_id:  # a new id that exists: cannot happen short of a collision
                raise ServiceUnavailable(f"run id {run_id} is taken; submit again") from None
            # the same fire again (a retry after a crash): announce it again, deduplicated
        except Exception as error:
            raise ServiceUnavailable(f"could not store the run: {error or type(error).__name__}") from error
        try:  # the commit point: from here on the run exists, whatever happens to this process
            await publish_event(self.js, created)
        except Exception as error:
            try:
                await self.plans_kv.purge(run_id)
            except Exception:
                pass
            raise ServiceUnavailable(f"could not store the run: {error or type(error).__name__}") from error
        try:  # so that GET right after 201 finds it; a scheduler does it if this fails or dies
            await self.store.create(state_of(created, plan))
        except Exception:
            pass
        return Submitted(run_id=run_id, diagnostics=diagnostics)

    async def request(self, run_id: str, event: RunCancelRequested | RunRetryRequested) -> None:
        """Append a cancel or retry request; the scheduler acts on it."""
        event = self.signer.sign(event)  # type: ignore[assignment]
        await publish_event(self.js, event)

    async def state(self, run_id: str) -> RunState | None:
        """The run with every job and step (None: no such run)."""
        try:
            subjects.check_token(run_id, "run id")
        except ValueError:
            return None
        plan = await self._plan(run_id)
        if plan is None:
            return None
        stored = await self.store.load(run_id, plan)
        return None if stored is None else stored.state

    async def status(self, run_id: str) -> RunState | None:
        """The run and its jobs without their steps: enough to know its status, and cheap."""
        try:
            return await self.store.load_header(subjects.check_token(run_id, "run id"))
        except ValueError:
            return None

    async def list(self, limit: int, before: str | None = None) -> tuple[list[RunState], str | None]:
        """Up to ``limit`` runs, newest first, older than run ``before`` (a cursor from the
        previous page); and the cursor of the next page (None: this is the last)."""
        ids = await self.store.run_ids()
        if before is not None:
            ids = [run_id for run_id in ids if run_id < before]
        page = ids[:limit]
        headers = await asyncio.gather(*(self.store.load_header(run_id) for run_id in page))
        runs = [state for state in headers if state is not None]
        return runs, (page[-1] if len(ids) > limit else None)

    async def plan(self, run_id: str) -> Plan | None:
        """A run's plan (None: no such run)."""
        return await self._plan(run_id)

    async def _plan(self, run_id: str) -> Plan | None:
        """A run's plan (never changes once stored, so a few hundred are kept in memory)."""
        plan = self._plans.get(run_id)
        if plan is None:
            try:
                entry = await self.plans_kv.get(run_id)
            except KeyNotFoundError:
                return None
            if not entry.value:
                return None
            plan = self._plans[run_id] = decode_plan(entry.value)
            while len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan

    async def events(self, run_id: str) -> list[dict[str, Any]]:
        msgs = await read_stored(self.js, subjects.EVENTS_STREAM, subjects.run_events(run_id))
        return [
            {"seq": m.metadata.sequence.stream, **msgspec.to_builtins(event)}
            for m in msgs if (event := self.trusted_event(run_id, m.subject, m.data)) is not None
        ]

    def trusted_event(self, run_id: str, subject: str, data: bytes) -> Event | None:
        """One stored event of ``run_id`` as the scheduler would take it: from a service, or from
        the agent the step was given to (its proof checks out, ``signing.py``). Anything else —
        a report an agent forged for a task it was not given, bytes that are no event — is what
        the scheduler ignored too: left out of the history and of ``/watch`` (a follower would
        otherwise show a forged "succeeded"), and logged as ``security.forged_event``."""
        try:
            event = decode_event(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            event = None
        if event is None or event.run_id != run_id or not self.signer.verify(event):
            log.warning("security.forged_event", run_id=run_id, subject=subject,
                        claimed=None if event is None else event.type)
            return None
        return event

    async def log_batch_count(self, run_id: str) -> int:
        """How many log batches of the run are stored now (to know when a follower has all)."""
        info = await self.js.stream_info(subjects.LOGS_STREAM, subjects_filter=subjects.run_logs(run_id))
        return sum((info.state.subjects or {}).values())

    async def logs(self, run_id: str) -> list[dict[str, Any]]:
        msgs = await read_stored(self.js, subjects.LOGS_STREAM, subjects.run_logs(run_id))
        return [line for m in msgs for line in self.trusted_log_lines(run_id, m.subject, m.data)]

    def trusted_log_lines(self, run_id: str, subject: str, data: bytes) -> list[dict[str, Any]]:
        """The lines of one stored log batch of ``run_id``, if the agent the step was given to
        wrote it (``signing.py``); a batch from anyone else, or not a batch at all, is dropped
        and logged as ``security.forged_log``."""
        try:
            batch = _log_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            batch = None
        if batch is None or batch.run_id != run_id or not self.signer.verify_log_batch(batch):
            log.warning("security.forged_log", run_id=run_id, subject=subject,
                        claimed=None if batch is None else batch.msg_id())
            return []
        return log_lines(batch)


def log_lines(batch: LogBatch) -> list[dict[str, Any]]:
    """A log batch as the API shows it: one object per line."""
    return [
        {"job": batch.job_id, "step": batch.step_index, "attempt": batch.attempt, "at": line.at,
         "stream": line.stream, "text": line.text}
        for line in batch.lines
    ]


def public_state(state: RunState) -> dict[str, Any]:
    """A run's state for API clients: the internal outbox is not part of it. A matrix or fan-out
    job also gets ``results``: one line per instance (server or combination), its status, the
    outputs of its steps and its error, so a fan-out's per-server reports read as one table."""
    shown = msgspec.to_builtins(state)
    shown.pop("outbox", None)
    shown["id"] = shown.pop("run_id")
    for job in shown["jobs"].values():
        if job["instances"]:
            job["results"] = [_instance_result(shown["jobs"][i]) for i in job["instances"] if i in shown["jobs"]]
    return shown


def _instance_result(instance: dict[str, Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for step in instance["steps"]:
        outputs.update(step.get("outputs") or {})
    failed = [s for s in instance["steps"] if s["status"] in ("failed", "cancelled")]
    return {
        "job": instance["id"], "agent": instance.get("agent"), "matrix": instance.get("matrix"),
        "status": instance["status"], "exit_code": failed[0].get("exit_code") if failed else 0 if instance["status"] == "succeeded" else None,
        "outputs": outputs, "error": instance.get("error") or (failed[0].get("error") if failed else None),
    }



