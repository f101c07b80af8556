"""The agent: pulls step tasks for its groups, runs them, reports results and logs.

Delivery is at least once. The agent acks a task only after its result event is stored, and
signals "in progress" every ack_wait/3 while the step runs; if the agent dies, JetStream
redelivers the task to another agent of the group after ``ack_wait``. On a clean shutdown
(Ctrl-C) running steps are stopped and their tasks handed back (nak) for another agent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from waterflow_common import bus, subjects
from waterflow_common.agents import kv_stream
from waterflow_common.auth import agent_inbox_prefix
from waterflow_common.limits import MAX_STEP_RESULT_BYTES
from waterflow_common.log import get_logger
from waterflow_common.pulling import Puller
from waterflow_common.messages import CancelStep, EventBase, StepFailed, StepStarted, StepSucceeded, StepTask, StepTaskIdentity, encode, utcnow
from waterflow_common.settings import AgentSettings
from waterflow_common.signing import sign_with_token

from . import processes
from .logsink import LogSink
from .registration import Registration
from .executor import execute_step
from .nodes.registry import agent_registry, default_plugin_dir
from .runner import step_environment, watch_children_with_pidfd

log = get_logger("waterflow.agent")
_task_decoder = msgspec.json.Decoder(StepTask)
_identity_decoder = msgspec.json.Decoder(StepTaskIdentity)
_cancel_decoder = msgspec.json.Decoder(CancelStep)
MAX_ERROR_CHARS = 4000
"""Characters of a step's error message kept in its result (the log has the rest)."""


class Agent:
    def __init__(self, settings: AgentSettings, js: JetStreamContext) -> None:
        self.settings = settings
        self.js = js
        self.name = subjects.check_token(settings.agent_name, "agent name")
        self.work_dir = Path(settings.work_dir)
        self._active = 0
        """Steps running now (at most ``max_concurrent_steps``)."""
        self._slot_freed = asyncio.Event()
        self._cancel_all = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._pullers: list[Puller] = []
        self._pinned: dict[asyncio.Task[None], str] = {}
        self.on_pinned_step: Callable[[], None] = lambda: None
        """Called when a pinned step starts (the registration heartbeats soon)."""
        self._step_cancels: dict[str, tuple[asyncio.Event, list[str]]] = {}
        """Task key -> (event that stops the step, reason) for CancelStep commands."""

    def cancel_step(self, command: CancelStep) -> None:
        """A CancelStep from the scheduler: stop that attempt if it runs here."""
        entry = self._step_cancels.get(command.key)
        if entry is not None:
            entry[1].append(command.reason)
            entry[0].set()

    @property
    def running_steps(self) -> list[str]:
        """Keys of the step attempts running here now (reported in the heartbeat)."""
        return sorted(self._step_cancels)

    def resubscribe(self) -> None:
        """Make every puller recreate its subscription (called after NATS reconnected)."""
        for puller in self._pullers:
            puller.reset()

    async def pull(self, source: str, config: js_api.ConsumerConfig, stop: asyncio.Event) -> None:
        """Fetch tasks from one consumer (a group's, or this agent's own) whenever a slot is free.

        :class:`~waterflow_common.pulling.Puller` keeps the subscription working through NATS
        restarts; this loop decides how many tasks to ask for.
        """
        puller = Puller(self.js, subjects.TASKS_STREAM, config, source=source)
        self._pullers.append(puller)
        try:
            while not stop.is_set():
                # Each puller (one per group, one for the agent's own subject) asks for its share
                # of the free slots without reserving them, so one puller's long fetch never
                # keeps a task of another waiting (with one slot, a fan-out task used to wait for
                # the group's 1-second fetch to expire). If two pullers get tasks for the last
                # slot at once, the one that comes second hands its task straight back.
                share = max(1, self.settings.max_concurrent_steps // len(self._pullers))
                if source.startswith("group "):
                    # A group task starts a job this agent then keeps (its later steps come on
                    # this agent's own subject): take new jobs one at a time, so that jobs spread
                    # over the group's agents instead of piling onto whichever fetched first.
                    share = 1
                free = min(self.settings.max_concurrent_steps - self._active, share)
                if free <= 0:
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
                    continue
                for msg in await puller.fetch(free, timeout=1.0):
                    await self._start(msg)
        finally:
            self._pullers.remove(puller)
            await puller.close()

    async def _start(self, msg: Msg) -> None:
        """Run a fetched task in a free slot (or hand it back when another puller took the slot)."""
        if self._active >= self.settings.max_concurrent_steps:
            await _hand_back(msg)
            return
        self._active += 1
        task = asyncio.create_task(self._execute(msg))
        self._running.add(task)
        task.add_done_callback(self._done)
        if msg.subject == subjects.agent_tasks(self.name):
            self._track_pinned(task, msg)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._active -= 1
        self._slot_freed.set()
        self._pinned.pop(task, None)

    def _track_pinned(self, task: asyncio.Task[None], msg: Msg) -> None:
        """Remember a task only this agent can run (from its own subject) and announce it soon:
        if this agent dies, the scheduler sees in its last heartbeat what was lost. Announcements
        are coalesced (one registration write per heartbeat_interval/5: every step after a job's
        first is such a task, and a write per step halved throughput); a step that started in
        between comes back to this agent's consumer after ``ack_wait``, where a scheduler drains it."""
        try:
            self._pinned[task] = _task_decoder.decode(msg.data).key
        except (msgspec.DecodeError, msgspec.ValidationError):
            return  # _execute reports and terminates it
        self.on_pinned_step()

    @property
    def pinned_steps(self) -> list[str]:
        """Keys of running steps that came on this agent's own subject (fan-out instances)."""
        return sorted(self._pinned.values())

    async def _execute(self, msg: Msg) -> None:
        try:
            task = _task_decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            await self._report_malformed(msg, error)
            return
        bound = log.bind(run_id=task.run_id, job=task.job_id, step=task.step.index, attempt=task.attempt)
        if msg.metadata.num_delivered and msg.metadata.num_delivered > 1:
            # Delivered again: whoever had it first may still be running it. Never run a second
            # copy under the same attempt number: say so, and the scheduler sends a new attempt.
            bound.warning("step.redelivered", delivered=msg.metadata.num_delivered)
            await self._publish(sign_with_token(task.token, StepFailed(
                run_id=task.run_id, job_id=task.job_id, step_index=task.step.index, attempt=task.attempt, agent=self.name,
                interrupted=True, error=f"interrupted: attempt {task.attempt} was delivered again (the agent running it "
                                        "stopped answering or handed it back); running it as a new attempt",
            )))
            await msg.ack()
            return
        keepalive = asyncio.create_task(_keep_in_progress(msg, self.settings.ack_wait / 3))
        # Registered before step.started is published: a cancel sent in answer to it must find the step.
        cancel, reasons = asyncio.Event(), []
        self._step_cancels[task.key] = (cancel, reasons)
        try:
            await self._publish(sign_with_token(task.token, StepStarted(
                run_id=task.run_id, job_id=task.job_id, step_index=task.step.index, attempt=task.attempt, agent=self.name,
            )))
            bound.info("step.started")
            started_at = utcnow()
            sink = LogSink(self.js, task)
            workspace = self.work_dir / task.run_id / task.job_id
            extra = {
                "CI": "true",
                "WATERFLOW": "true",
                "WATERFLOW_RUN_ID": task.run_id,
                "WATERFLOW_JOB": task.job_id,
                "WATERFLOW_STEP": str(task.step.index),
                "WATERFLOW_ATTEMPT": str(task.attempt),
                "WATERFLOW_AGENT": self.name,
                "WATERFLOW_GROUP": task.group,
                "WATERFLOW_WORKSPACE": str(workspace),
            }
            stop_on_shutdown = asyncio.create_task(_relay(self._cancel_all, cancel))
            try:
                result = await execute_step(
                    task, workspace=workspace, temp_dir=self.work_dir / "_temp",
                    env=step_environment(os.environ, task, extra), emit=sink.emit, cancel=cancel,
                    js=self.js, registry=agent_registry(default_plugin_dir(self.settings)), masker=sink.masker,
                )
            finally:
                stop_on_shutdown.cancel()
                await sink.close()
            if self._cancel_all.is_set() and not reasons:
                bound.info("step.handed_back")
                await msg.nak()
                return
            result_type = StepSucceeded if result.succeeded else StepFailed
            masked = sink.masker  # the task's secrets and every ::add-mask:: of the step
            event: StepSucceeded | StepFailed = result_type(
                run_id=task.run_id, job_id=task.job_id, step_index=task.step.index, attempt=task.attempt,
                agent=self.name, exit_code=result.exit_code, outputs={k: masked(v) for k, v in result.outputs.items()},
                error=f"cancelled: {reasons[0]}" if reasons else (result.error and masked(result.error[:MAX_ERROR_CHARS])),
                started_at=started_at, cancelled=bool(reasons),
                annotations=tuple(msgspec.structs.replace(a, message=masked(a.message)) for a in result.annotations),
                summary=masked(result.summary) if result.summary else None,
                **({} if result.succeeded else {"retryable": result.retryable}),
            )
            size = len(encode(event))
            if size > MAX_STEP_RESULT_BYTES:
                # Too big for one NATS message: it would never be stored and the run would hang.
                event = StepFailed(
                    run_id=task.run_id, job_id=task.job_id, step_index=task.step.index, attempt=task.attempt,
                    agent=self.name, exit_code=result.exit_code, started_at=started_at, retryable=False,
                    error=(f"the step's outputs are {size} bytes encoded, over the limit of {MAX_STEP_RESULT_BYTES}: "
                           "pass large data as a file (file/upload) and its name as the output"),
                )
            await self._publish(sign_with_token(task.token, event))
            bound.info("step.finished", exit_code=result.exit_code, ok=result.succeeded)
            await msg.ack()
        finally:
            self._step_cancels.pop(task.key, None)
            keepalive.cancel()

    async def _report_malformed(self, msg: Msg, error: Exception) -> None:
        """A task this agent cannot read: fail its step with the reason if the task still says
        which step it is (the run then fails, saying why), and drop it. Agents cannot write dead
        letters (see ``deadletters.py``): the reason goes to the run, the details to this log."""
        log.error("task.malformed", subject=msg.subject, error=str(error))
        try:
            task = _identity_decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            await msg.term()
            return
        await self._publish(sign_with_token(task.token, StepFailed(
            run_id=task.run_id, job_id=task.job_id, step_index=task.step.index, attempt=task.attempt, agent=self.name,
            retryable=False, error=f"agent {self.name} could not read this step's task: {str(error)[:500]}",
        )))
        await msg.term()

    async def _publish(self, event: EventBase) -> None:
        """Publish an event, retrying until it is stored: a result must never be lost."""
        delay = 0.2
        while True:
            try:
                await bus.publish_event(self.js, event)
                return
            except Exception as error:
                log.warning("publish.retry", type=event.type, error=str(error) or type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def shutdown(self) -> None:
        """Stop running steps and hand their tasks back; wake pullers waiting for a slot."""
        self._cancel_all.set()
        self._slot_freed.set()
        if self._running:
            await asyncio.wait(self._running, timeout=15)


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _hand_back(msg: Msg) -> None:
    """Return a task this agent has no slot for: redelivered at once (to any agent of the group)."""
    try:
        await msg.nak()
    except Exception as error:  # not handed back: redelivered after ack_wait instead
        log.warning("task.hand_back_failed", subject=msg.subject, error=str(error) or type(error).__name__)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def ensure_provisioned(js: JetStreamContext, stop: asyncio.Event, replicas: int = 1) -> None:
    """Provision streams and buckets if missing; with restricted NATS permissions (see
    waterflow_common.auth) an agent may only look, so it waits for the services to create them."""
    needed = (subjects.TASKS_STREAM, subjects.EVENTS_STREAM, subjects.LOGS_STREAM, kv_stream(subjects.AGENTS_BUCKET))
    waiting_logged = False
    while not stop.is_set():
        try:
            for stream in needed:
                await js.stream_info(stream)
            return
        except NotFoundError:
            pass
        except Exception as error:
            log.warning("provision.check_failed", error=str(error) or type(error).__name__)
        try:
            await asyncio.wait_for(bus.provision(js, replicas), 10)
            return
        except Exception as error:
            if not waiting_logged:
                log.info("provision.waiting", reason=str(error) or type(error).__name__,
                         hint="streams are created by the first service that may; start api/scheduler")
                waiting_logged = True
            await _sleep_or_stop(stop, 1.0)


async def _keep_in_progress(msg: Msg, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await msg.in_progress()
        except Exception as error:
            log.warning("in_progress.failed", error=str(error) or type(error).__name__)


async def serve(settings: AgentSettings, stop: asyncio.Event) -> None:
    watch_children_with_pidfd()
    killed = processes.use_registry(Path(settings.work_dir))
    if killed:
        log.warning("agent.orphans_killed", groups=killed, hint="steps a killed agent left running on this work dir")
    holder: list[Agent] = []
    registration_holder: list[Registration] = []

    async def on_reconnect() -> None:
        # Resubscribe every puller (nats.py #504) and re-announce this agent at once.
        for agent in holder:
            agent.resubscribe()
        for registration in registration_holder:
            registration.nudge()

    nc = await bus.connect(
        settings, f"waterflow-agent-{settings.agent_name}",
        on_reconnect=on_reconnect, inbox_prefix=agent_inbox_prefix(settings.agent_name),
    )
    js = nc.jetstream()
    await ensure_provisioned(js, stop, settings.stream_replicas)
    agent = Agent(settings, js)
    holder.append(agent)
    registration = Registration(settings, js, lambda: agent.running_steps, lambda: agent.pinned_steps)
    registration_holder.append(registration)
    agent.on_pinned_step = registration.nudge

    async def on_control(msg: Msg) -> None:
        try:
            agent.cancel_step(_cancel_decoder.decode(msg.data))
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            log.error("control.malformed", subject=msg.subject, error=str(error))

    await nc.subscribe(subjects.agent_control(agent.name), cb=on_control)
    heartbeat = asyncio.create_task(registration.run(stop))
    sources = [(f"group {g}", bus.group_consumer_config(g, settings.ack_wait)) for g in settings.groups]
    sources.append((f"agent {agent.name}", bus.agent_consumer_config(agent.name, settings.ack_wait)))
    pullers = [asyncio.create_task(agent.pull(source, config, stop)) for source, config in sources]
    log.info("agent.ready", name=agent.name, groups=settings.groups, labels=settings.labels,
             capacity=settings.max_concurrent_steps)
    await stop.wait()
    await agent.shutdown()
    for puller in pullers:
        puller.cancel()
    await asyncio.gather(*pullers, return_exceptions=True)
    await asyncio.wait_for(heartbeat, 10)  # writes the "stopped" record
    await bus.close(nc)
