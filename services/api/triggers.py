"""Registered workflows (triggers): what the API keeps, schedules and starts.

``register`` compiles the workflow once (so a broken file is refused at registration, not at
3 a.m.), stores it in KV ``wf_triggers`` and publishes one cron message schedule per
``on.schedule`` entry. ``fire`` (a webhook) publishes the same kind of message a schedule does.
``serve_fires`` is the loop every API replica runs: it turns each fire into one run.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError, NoKeysError

from waterflow_common import bus, subjects
from waterflow_common.deadletters import POISON_AFTER, move_aside, retry_delay
from waterflow_common.diagnostics import Diagnostic
from waterflow_common.inputs import resolve_inputs
from waterflow_common.log import get_logger
from waterflow_common.pulling import Puller
from waterflow_common.state import decode_plan
from waterflow_common.triggers import Trigger, TriggerFired, fired_run_id, nats_cron

from .runs import InvalidInputs, Runs, new_run_id

log = get_logger("waterflow.api.triggers")
_trigger_decoder = msgspec.json.Decoder(Trigger)
_fired_decoder = msgspec.json.Decoder(TriggerFired)
CONSUMER = "triggers"
"""Who moved a fire aside, in its dead letter."""


def new_trigger_id() -> str:
    return f"t{int(time.time() * 1000):x}{secrets.token_hex(3)}"


class Triggers:
    def __init__(self, runs: Runs) -> None:
        self.runs = runs
        self.js = runs.js

    async def _kv(self):  # type: ignore[no-untyped-def]
        return await self.js.key_value(subjects.TRIGGERS_BUCKET)

    async def register(
        self, source: str, filename: str, inputs: dict[str, Any], workflows: dict[str, str]
    ) -> tuple[Trigger | None, list[Diagnostic]]:
        reply = await self.runs.compile(source, filename, workflows)
        diagnostics = [msgspec.convert(d, Diagnostic) for d in reply.diagnostics]
        if reply.plan is None:
            return None, diagnostics
        plan = decode_plan(reply.plan)
        schedule = plan.on.get("schedule") or []
        crons = [str(entry["cron"]) for entry in schedule if isinstance(entry, dict) and "cron" in entry]
        trigger = Trigger(id=new_trigger_id(), name=plan.name, source=source, filename=filename,
                          workflows=workflows, inputs=inputs, crons=crons, webhook_secret=secrets.token_urlsafe(32))
        await (await self._kv()).create(trigger.id, msgspec.json.encode(trigger))
        fire = msgspec.json.encode(TriggerFired(trigger_id=trigger.id, by="schedule"))
        for index, cron in enumerate(crons):
            await self.js.publish(subjects.trigger_schedule(trigger.id, index), fire, headers={
                subjects.SCHEDULE_HEADER: nats_cron(cron),
                subjects.SCHEDULE_TARGET_HEADER: subjects.trigger_fired(trigger.id),
            })
        return trigger, diagnostics

    async def get(self, trigger_id: str) -> Trigger | None:
        try:
            subjects.check_token(trigger_id, "trigger id")
            entry = await (await self._kv()).get(trigger_id)
        except (KeyNotFoundError, ValueError):
            return None
        return _trigger_decoder.decode(entry.value) if entry.value else None

    async def list(self) -> list[Trigger]:
        try:
            keys = await (await self._kv()).keys()
        except NoKeysError:
            return []
        found = [await self.get(key) for key in sorted(keys)]
        return [t for t in found if t is not None]

    async def delete(self, trigger_id: str) -> bool:
        if await self.get(trigger_id) is None:
            return False
        # Purging the schedule messages stops the schedules; then forget the definition.
        await self.js.purge_stream(subjects.TRIGGERS_STREAM, subject=subjects.trigger_schedules(trigger_id))
        await (await self._kv()).purge(trigger_id)
        return True

    async def check_inputs(self, trigger: Trigger, inputs: dict[str, Any]) -> list[str]:
        """What is wrong with a fire's inputs (over the registered ones), before it is accepted."""
        reply = await self.runs.compile(trigger.source, trigger.filename, trigger.workflows)
        if reply.plan is None:
            return ["the registered workflow no longer compiles"]
        _, problems = resolve_inputs(decode_plan(reply.plan).inputs, {**trigger.inputs, **inputs})
        return [str(p) for p in problems]

    async def fire(self, trigger_id: str, inputs: dict[str, Any], payload: Any = None, wait: float = 5.0) -> tuple[str, bool]:
        """A webhook call: start a run now with these inputs (over the registered ones); the
        whole JSON body becomes the run's ``github.event``. Returns the run's id — chosen here,
        so the caller can follow the run — and whether the run exists yet: the fire is turned
        into the run by whichever API replica takes it, which is awaited up to ``wait`` seconds
        so that ``waterflow status <id>`` right after the answer finds it."""
        run_id = new_run_id()
        fired = TriggerFired(trigger_id=trigger_id, by="webhook", inputs=inputs, payload=payload, run_id=run_id)
        await self.js.publish(subjects.trigger_fired(trigger_id), msgspec.json.encode(fired))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while loop.time() < deadline:
            if await self.runs.status(run_id) is not None:
                return run_id, True
            await asyncio.sleep(0.02)
        return run_id, False

    async def start_run(self, msg: Msg) -> None:
        try:
            fired = _fired_decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            await move_aside(self.js, msg, f"malformed trigger fire: {error}", CONSUMER)
            return
        trigger = await self.get(fired.trigger_id)
        if trigger is None:  # deleted while a fire was on its way
            await msg.ack()
            return
        run_id = fired.run_id or fired_run_id(msg.metadata.timestamp, msg.metadata.sequence.stream)
        try:
            submitted = await self.runs.submit(
                trigger.source, trigger.filename, {**trigger.inputs, **fired.inputs}, trigger.workflows, run_id=run_id,
                event_name=fired.by, event=fired.payload if fired.by == "webhook" else {"trigger": trigger.id},
            )
        except InvalidInputs as error:
            log.error("trigger.invalid_inputs", trigger=trigger.id, error=str(error))
            await move_aside(self.js, msg, f"trigger {trigger.id}: invalid inputs: {error}", CONSUMER)
            return
        if submitted.run_id is None:  # the registered workflow no longer compiles
            problems = "; ".join(d.message for d in submitted.diagnostics[:5])
            await move_aside(self.js, msg, f"trigger {trigger.id}: the workflow does not compile: {problems}", CONSUMER)
            return
        log.info("trigger.fired", trigger=trigger.id, by=fired.by, run_id=submitted.run_id)
        await msg.ack()


async def serve_fires(triggers: Triggers, stop: asyncio.Event) -> None:
    """Turn fires into runs until ``stop``; API replicas share the consumer."""
    puller = Puller(triggers.js, subjects.TRIGGERS_STREAM, bus.triggers_consumer_config())
    try:
        await _turn_fires_into_runs(triggers, puller, stop)
    finally:
        await puller.close()  # before the connection drains: a drain waits on an open pull subscription


async def _turn_fires_into_runs(triggers: Triggers, puller: Puller, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for msg in await puller.fetch(16, timeout=1.0):
            try:
                await triggers.start_run(msg)
            except Exception as error:  # compile service down, NATS blip: try again later, not forever
                reason = f"{type(error).__name__}: {error}"[:500]
                delivered = msg.metadata.num_delivered or 1
                log.warning("trigger.start_failed", subject=msg.subject, delivered=delivered, error=reason)
                try:
                    if delivered >= POISON_AFTER:
                        await move_aside(triggers.js, msg, reason, CONSUMER)
                    else:
                        await msg.nak(delay=retry_delay(delivered))
                except Exception as nak_error:  # NATS away: redelivered after ack_wait
                    log.warning("trigger.nak_failed", error=str(nak_error) or type(nak_error).__name__)


__all__ = ["Triggers", "serve_fires"]
