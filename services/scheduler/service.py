"""The scheduler service: consumes run events, advances runs, publishes tasks and history.

How several schedulers stay safe at once
----------------------------------------
All schedulers share one durable consumer on the event stream, so each event goes to one of
them, but two events of the same run may be handled by two schedulers at the same moment. Each
handles an event as: read the run's state and its KV revision, :func:`machine.apply` the event,
write the state back *only if the revision is unchanged* (``kv.update(last=...)``), else re-read
and re-apply. The decided messages are stored in the state's outbox in that same write, published
(with a ``Nats-Msg-Id``, so a second publish is dropped), and only then is the event acked. A
scheduler killed at any point leaves either an unacked event (redelivered, re-applied as a no-op,
its outbox published) or a finished one. Outbox entries are removed by the next write of a
scheduler that has published them itself. Events of one run fetched together (the burst of step
events an agent publishes while it runs a job) go through this as one: applied in order, one
write, acked together.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict

import msgspec
from cachetools import LRUCache
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from waterflow_common import bus, subjects
from waterflow_common.deadletters import POISON_AFTER, move_aside, retry_delay
from waterflow_common.bus import publish_event
from waterflow_common.log import get_logger
from waterflow_common.expressions import ExpressionError, evaluate_value, to_string
from waterflow_common.messages import (
    Event,
    JobCompleted,
    RunCompleted,
    RunCreated,
    RunUnblocked,
    StepFailed,
    StepSucceeded,
    TimerFired,
    decode_event,
)
from waterflow_common.plan import Plan
from waterflow_common.agents import fail_lost_steps, list_agents
from waterflow_common.group_store import StoredGroupProvider
from waterflow_common.groups import Fleet, load_provider
from waterflow_common.pulling import Puller
from waterflow_common.secrets import KvSecretProvider, SecretProvider
from waterflow_common.signing import Signer, load_signer
from waterflow_common.telemetry import RunTracer
from waterflow_common.settings import SchedulerSettings
from waterflow_common.runstore import RunStore, StateTooLarge, StoredRun, WriteConflict
from waterflow_common.state import Outgoing, RunState, decode_plan, state_of

from waterflow_common import contexts

from . import machine
from .concurrency import ConcurrencyGroups
from .machine import Decisions

log = get_logger("waterflow.scheduler")

MAX_CONFLICT_RETRIES = 50
RUN_CACHE_SIZE = 2000
"""Runs whose plan and last state a scheduler keeps in memory (the rest are read again)."""
PUBLISHED_CACHE_SIZE = 50_000
"""Outbox messages remembered as published (forgetting one only means publishing it again:
the stream drops the duplicate by its msg id)."""
CONSUMER = "scheduler"
"""Who moved an event aside, in its dead letter."""
DIRECTORY_MAX_AGE = 2.0
"""Seconds a listing of the healthy agents is reused: every dispatch needs it, and reading a
thousand agents' records each time made a 1000-agent fan-out crawl.
Health itself is only known to a heartbeat (5 s), so this adds little staleness."""


class Scheduler:
    def __init__(
        self, settings: SchedulerSettings, nc: Client, plans: KeyValue, slots: KeyValue,
        secrets: SecretProvider, signer: Signer,
    ) -> None:
        self.settings = settings
        self.signer = signer
        self.concurrency = ConcurrencyGroups(slots)
        self.secrets: SecretProvider = secrets
        # Per-run caches are bounded: a run another scheduler finished never says goodbye here.
        self._secret_names: LRUCache[str, set[str]] = LRUCache(RUN_CACHE_SIZE)
        self.tracer = RunTracer.from_settings(settings.otel_endpoint, settings.otel_file)
        self.groups = StoredGroupProvider(load_provider(settings.server_groups))
        """server-groups.yml plus the groups defined through the API (kept current by follow())."""
        self.nc = nc
        self.js = nc.jetstream()
        self.plans = plans
        self._plans: LRUCache[str, Plan] = LRUCache(RUN_CACHE_SIZE)
        self.store = RunStore(nc)
        self._states: LRUCache[str, StoredRun] = LRUCache(RUN_CACHE_SIZE)
        """run id -> the state this scheduler last wrote (or read) for the run."""
        self._published: LRUCache[str, bool] = LRUCache(PUBLISHED_CACHE_SIZE)
        """msg ids this scheduler published (and has not yet pruned from their run's outbox)."""
        self._fleet_cache: tuple[float, Fleet] | None = None
        """(when read, the healthy agents): read at most every DIRECTORY_MAX_AGE seconds."""
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        """One lock per run being handled; gone once nobody holds or waits for it."""

    def groups_changed(self) -> None:
        """A stored group definition changed: the next dispatch builds its fleet afresh."""
        self._fleet_cache = None

    def _lock(self, run_id: str) -> asyncio.Lock:
        lock = self._locks.get(run_id)
        if lock is None:
            lock = self._locks[run_id] = asyncio.Lock()
        return lock

    async def plan(self, run_id: str) -> Plan:
        plan = self._plans.get(run_id)
        if plan is None:
            entry = await self.plans.get(run_id)
            assert entry.value is not None
            plan = self._plans[run_id] = decode_plan(entry.value)
        return plan

    async def handle(self, msg: Msg) -> None:
        """Handle one event message end to end, acking it only when its effects are published."""
        event = await self._accepted(msg)
        if event is not None:
            await self._handle_events([(msg, event)])

    async def handle_run(self, msgs: list[Msg]) -> None:
        """Handle messages of one run, in order. The events are applied to the run's state
        together and it is written once (an agent running a job publishes its step events in
        bursts: one state write per burst instead of per event). If that fails, each event is
        handled on its own, so a poison event is found and moved aside alone."""
        accepted = [(msg, event) for msg in msgs if (event := await self._accepted(msg)) is not None]
        if len(accepted) > 1 and len({event.run_id for _, event in accepted}) == 1:
            try:
                await self._handle_events(accepted)
                return
            except Exception as error:
                log.info("events.one_by_one", run_id=accepted[0][1].run_id, error=f"{type(error).__name__}: {error}"[:300])
        for msg, event in accepted:
            try:
                await self._handle_events([(msg, event)])
            except Exception as error:
                await self.handle_failure(msg, error)

    async def _accepted(self, msg: Msg) -> Event | None:
        """The message's event, or None when it was moved aside (malformed, or forged)."""
        try:
            event = decode_event(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            log.error("event.malformed", subject=msg.subject, seq=msg.metadata.sequence.stream, error=str(error))
            await move_aside(self.js, msg, f"malformed event: {error}", CONSUMER, _run_of(msg.subject))
            return None
        if not self.signer.verify(event):
            # Not from a service, nor from the agent the task went to: a forged or planted event.
            log.warning("security.forged_event", subject=msg.subject, type=event.type, run_id=event.run_id,
                        agent=getattr(event, "agent", None), seq=msg.metadata.sequence.stream)
            await move_aside(self.js, msg, "forged: its proof does not check out (security.forged_event)", CONSUMER,
                             _run_of(msg.subject))
            return None
        return event

    async def _handle_events(self, accepted: list[tuple[Msg, Event]]) -> None:
        """Apply events of one run, publish what they decided, then ack them."""
        run_id = accepted[0][1].run_id
        events = [event for _, event in accepted]
        async with self._lock(run_id):
            try:
                state, outgoing, changed = await self._apply(events)
            except NotFoundError:
                if len(accepted) > 1:
                    raise
                msg, event = accepted[0]
                log.error("event.unknown_run", run_id=run_id, type=event.type)
                await move_aside(self.js, msg, f"no run {run_id} (no plan or state stored)", CONSUMER, _run_of(msg.subject))
                return
            await self._publish_outbox(state)
            if state.finished:
                await self._release(state)
            if changed:
                self._trace(events, state, outgoing.events)
        for msg, _ in accepted:
            await msg.ack()
        if state.finished:
            self._plans.pop(run_id, None)
            self._states.pop(run_id, None)
            self._secret_names.pop(run_id, None)

    async def handle_failure(self, msg: Msg, error: Exception) -> None:
        """An event that could not be handled: try again later (NATS may be away), but never
        forever. After POISON_AFTER deliveries the event is moved aside (a dead letter with the
        reason) and its run is ended failed, naming the dead letter, so one bad run cannot keep a
        scheduler busy or its log growing."""
        reason = f"{type(error).__name__}: {error}"[:500]
        delivered = msg.metadata.num_delivered or 1
        run_id = _run_of(msg.subject)
        if delivered < POISON_AFTER:
            log.warning("event.failed", subject=msg.subject, delivered=delivered, error=reason)
            try:
                await msg.nak(delay=retry_delay(delivered))
            except Exception:
                pass
            return
        log.error("event.poison", subject=msg.subject, delivered=delivered, error=reason)
        try:
            seq = await move_aside(self.js, msg, reason, CONSUMER, run_id)
        except Exception as store_error:  # NATS away: the event comes back and is moved aside then
            log.error("event.not_moved_aside", subject=msg.subject, error=str(store_error) or type(store_error).__name__)
            try:
                await msg.nak(delay=retry_delay(delivered))
            except Exception:
                pass
            return
        if run_id is None:
            return
        try:
            await self.fail_run(run_id, f"event could not be applied ({msg.subject}, dead letter {seq}: "
                                        f"waterflow dead-letters show {seq}): {reason}")
        except Exception as fail_error:
            log.error("event.poison_run_not_failed", run_id=run_id, error=str(fail_error) or type(fail_error).__name__)

    async def fail_run(self, run_id: str, reason: str) -> None:
        """End a run failed with ``reason``, whatever its outbox held (it may be what failed)."""
        async with self._lock(run_id):
            self._states.pop(run_id, None)
            plan = await self.plan(run_id)
            for _ in range(MAX_CONFLICT_RETRIES):
                stored = await self.store.load(run_id, plan)
                if stored is None or stored.state.finished:
                    return
                state = stored.state
                decisions = machine.fail_run(state, reason, signer=self.signer)
                state.outbox = list(decisions)
                try:
                    await self._save(stored, state, decisions)
                except WriteConflict:
                    continue
                await self._publish_outbox(state)
                return

    async def _apply(self, events: list[Event]) -> tuple[RunState, Decisions, bool]:
        """Apply events of one run under optimistic concurrency; return the state, what they
        decided, and whether they changed the state (redelivered events do not)."""
        run_id = events[0].run_id
        plan = await self.plan(run_id)
        for _ in range(MAX_CONFLICT_RETRIES):
            # The state this scheduler last wrote saves a read; if another scheduler wrote since,
            # the revision checks of the write fail and the state is read afresh. Popped, so that
            # a failure half-way through apply() cannot leave a half-changed state cached.
            stored = self._states.pop(run_id, None)
            cached = stored is not None
            if stored is None:
                stored = await self.store.load(run_id, plan)
            created = next((e for e in events if isinstance(e, RunCreated)), None)
            if stored is None and created is not None:
                # The API died between announcing the run and storing its first state.
                try:
                    await self.store.create(state_of(created, plan))
                except KeyWrongLastSequenceError:
                    pass  # the API (or another scheduler) stored it meanwhile
                stored = await self.store.load(run_id, plan)
            if stored is None:
                raise NotFoundError
            state = stored.state
            outgoing = Decisions()
            # Read once for the whole burst (secrets are read from KV, fresh for each burst).
            fleet, secrets = await self._fleet(), await self._secrets(run_id)
            defined_groups = frozenset(self.groups.definitions())
            for event in events:
                decided = machine.apply(
                    state, plan, event, directory=fleet, blocked_by=await self._admit(state, plan, event),
                    secrets=secrets, defined_groups=defined_groups,
                    queue_timeout_minutes=self.settings.queue_timeout_minutes, signer=self.signer,
                )
                outgoing.extend(decided)
                outgoing.events.extend(decided.events)
            state.outbox = self._prune(state) + list(outgoing)
            try:
                saved, outgoing = await self._save(stored, state, outgoing)
            except WriteConflict:
                log.debug("state.conflict", run_id=run_id)
                continue
            self._states[run_id] = saved
            if saved is stored:
                # Nothing to write. Against a state read just now the events really change
                # nothing (redeliveries); against the cache it may only look so because another
                # scheduler has moved the run on: make sure before the events are acked.
                if cached and await self.store.revision(run_id) != stored.revision:
                    self._states.pop(run_id, None)
                    continue
                return state, Decisions(), False
            log.debug("event.applied", run_id=run_id, types=[e.type for e in events], status=state.status)
            return state, outgoing, True
        raise RuntimeError(f"run {run_id}: too many concurrent updates")

    async def _save(self, stored: StoredRun, state: RunState, outgoing: Decisions) -> tuple[StoredRun, Decisions]:
        """Store the state; one that no longer fits ends the run failed, saying why."""
        try:
            return await self.store.save(stored, state), outgoing
        except StateTooLarge as error:
            log.error("state.too_large", run_id=state.run_id, size=error.size, limit=error.limit)
            outgoing = machine.fail_oversized(state, error.size, error.limit, self.signer)
            state.outbox = list(outgoing)
            return await self.store.save(stored, state), outgoing

    def _trace(self, events: list[Event], state: RunState, decided: list[Event]) -> None:
        """Spans for what these events finished: step attempts, jobs, the run."""
        for event in events:
            if isinstance(event, (StepSucceeded, StepFailed, TimerFired)) and event.job_id in state.jobs:
                job = state.jobs[event.job_id]
                if event.step_index is not None and 0 <= event.step_index < len(job.steps):
                    step = job.steps[event.step_index]
                    if step.finished_at is not None:
                        self.tracer.step_finished(state, job, step)
        for decided_event in decided:
            if isinstance(decided_event, JobCompleted):
                self.tracer.job_finished(state, state.jobs[decided_event.job_id])
            elif isinstance(decided_event, RunCompleted):
                self.tracer.run_finished(state)

    async def _admit(self, state: RunState, plan: Plan, event: Event) -> str | None:
        """For a run about to start: take its concurrency group, or learn whom it waits for."""
        if plan.concurrency is None or state.status != "queued" or not isinstance(event, (RunCreated, RunUnblocked)):
            return None
        if state.concurrency_group is None:
            try:
                group = to_string(evaluate_value(plan.concurrency.group, contexts.run_context(state, plan)))
            except ExpressionError as error:
                log.error("concurrency.group_invalid", run_id=state.run_id, error=str(error))
                group = plan.concurrency.group
            state.concurrency_group = group or plan.name
        return await self.concurrency.acquire(state.concurrency_group, state.run_id)

    async def _release(self, state: RunState) -> None:
        """A finished run gives its concurrency group to the next queued run and wakes it."""
        if state.concurrency_group is None:
            return
        holder = await self.concurrency.release(state.concurrency_group, state.run_id)
        if holder is not None and holder != state.run_id:
            wake = self.signer.sign(RunUnblocked(run_id=holder, released_by=state.run_id))
            await publish_event(self.js, wake)

    async def _secrets(self, run_id: str) -> dict[str, str]:
        """The values of the secrets this run's plan references (read fresh: they may rotate)."""
        names = self._secret_names.get(run_id)
        if names is None:
            plan = await self.plan(run_id)
            if plan.secrets is not None:  # recorded by the compiler
                names = self._secret_names[run_id] = set(plan.secrets)
            else:  # a plan compiled before names were recorded
                entry = await self.plans.get(run_id)
                names = self._secret_names[run_id] = contexts.referenced_secrets(entry.value or b"")
        return await self.secrets.get(names) if names else {}

    async def _fleet(self) -> Fleet:
        """The healthy agents (read at most every DIRECTORY_MAX_AGE seconds): whom a fan-out
        targets, which member of a defined group runs a job, whether a group has anyone at all."""
        now = asyncio.get_running_loop().time()
        if self._fleet_cache is None or now - self._fleet_cache[0] >= DIRECTORY_MAX_AGE:
            records = await list_agents(self.js)
            fleet = Fleet([r.info for r in records if r.status == "healthy"], self.groups)
            self._fleet_cache = (now, fleet)
        return self._fleet_cache[1]

    def _prune(self, state: RunState) -> list[Outgoing]:
        """Keep outbox entries this scheduler has not published itself (someone else's, or new)."""
        kept = []
        for entry in state.outbox:
            if entry.msg_id in self._published:
                self._published.pop(entry.msg_id, None)
            else:
                kept.append(entry)
        return kept

    async def _publish_outbox(self, state: RunState) -> None:
        """Publish what is not yet published, concurrently (nats-py keeps the write order)."""
        pending = [entry for entry in state.outbox if entry.msg_id not in self._published]

        async def publish(entry: Outgoing) -> None:
            if entry.stored:
                headers = {subjects.MSG_ID_HEADER: entry.msg_id, **entry.headers}
                await self.js.publish(entry.subject, entry.data, headers=headers)
            else:
                await self.nc.publish(entry.subject, entry.data)
            self._published[entry.msg_id] = True

        await asyncio.gather(*(publish(entry) for entry in pending))


async def serve(settings: SchedulerSettings, stop: asyncio.Event) -> None:
    puller: Puller | None = None

    async def on_reconnect() -> None:
        if puller is not None:
            puller.reset()

    nc = await bus.connect(settings, "waterflow-scheduler", on_reconnect=on_reconnect)
    js = nc.jetstream()

    async def open_scheduler() -> Scheduler:
        await bus.provision(js, settings.stream_replicas)
        return Scheduler(
            settings, nc, await js.key_value(subjects.PLANS_BUCKET),
            await js.key_value(subjects.CONCURRENCY_BUCKET), KvSecretProvider(await js.key_value(subjects.SECRETS_BUCKET)),
            await load_signer(js),
        )

    opened = await bus.until_ready(open_scheduler, "scheduler", stop)
    if opened is None:  # stopped before JetStream was ready
        await bus.close(nc)
        return
    scheduler = opened
    puller = Puller(js, subjects.EVENTS_STREAM, bus.scheduler_consumer_config())
    await scheduler.groups.refresh(js)  # the first dispatch already sees groups defined through the API
    groups = asyncio.create_task(scheduler.groups.follow(js, scheduler.groups_changed))
    log.info("scheduler.ready")
    watchdog = asyncio.create_task(_report_lost_agents(js, scheduler.signer, settings.lost_agent_check_interval, stop))
    stopping = asyncio.create_task(stop.wait())
    while not stop.is_set():
        fetch = asyncio.create_task(puller.fetch(settings.batch_size, timeout=1.0))
        done, _ = await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if fetch not in done:
            fetch.cancel()
            break
        msgs = fetch.result()
        if msgs:
            await _handle_batch(scheduler, msgs)
    # Subscriptions are closed before the drain: a drain waits (up to its timeout) on a pull
    # subscription whose fetch was cancelled, and on a KV watch stopping in a cancelled task.
    watchdog.cancel()
    groups.cancel()
    await asyncio.gather(watchdog, groups, return_exceptions=True)
    await puller.close()
    scheduler.tracer.shutdown()
    await bus.close(nc)


async def _report_lost_agents(js: JetStreamContext, signer: Signer, interval: float, stop: asyncio.Event) -> None:
    """Steps sent to one agent (fan-out) cannot move to another when it dies: fail them with
    the reason once the agent has been silent long enough (the run then goes on)."""
    while not stop.is_set():
        await asyncio.sleep(interval)
        try:
            failed = await fail_lost_steps(js, signer)
            if failed:
                log.warning("agents.lost_steps_failed", steps=failed)
        except Exception as error:
            log.warning("agents.lost_check_failed", error=str(error) or type(error).__name__)


def _run_of(subject: str) -> str | None:
    """The run an event's subject names (None: the subject is not a run's)."""
    try:
        return subjects.check_token(subjects.run_id_of(subject), "run id")
    except (IndexError, ValueError):
        return None


async def _handle_batch(scheduler: Scheduler, msgs: list[Msg]) -> None:
    """Events of one run in order; different runs concurrently."""
    by_run: defaultdict[str, list[Msg]] = defaultdict(list)
    for msg in msgs:
        by_run[subjects.run_id_of(msg.subject)].append(msg)

    async def one_run(run_msgs: list[Msg]) -> None:
        try:
            await scheduler.handle_run(run_msgs)
        except Exception as error:  # NATS away while moving a message aside: they all come back
            log.warning("events.not_handled", count=len(run_msgs), error=str(error) or type(error).__name__)

    await asyncio.gather(*(one_run(m) for m in by_run.values()))
