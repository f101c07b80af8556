"""The agent: pulls job tasks for its groups, runs each job's steps, reports results and logs.

Delivery is at least once. The agent acks a job task only after the job is handed back
(``job.ran`` stored), and signals "in progress" every ack_wait/3 while it runs; if the agent
dies, JetStream redelivers the task after ``ack_wait`` (to another agent of the group, or to
this agent's own subject when the job is pinned here), which reports it ``interrupted`` for
the scheduler to decide. On a clean shutdown (Ctrl-C) running steps are stopped and their tasks
handed back (nak). How a job's steps are walked: ``job.py``.
"""

from __future__ import annotations

import asyncio
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
from waterflow_common.log import get_logger
from waterflow_common.pulling import Puller
from waterflow_common.messages import CancelJob, EventBase, JobRan, StepFailed, StepOutcome
from waterflow_common.settings import AgentSettings
from waterflow_common.signing import sign_with_token
from waterflow_common.tasks import JobTask, JobTaskIdentity

from . import processes
from .job import Ended, JobRun
from .registration import Registration
from .runner import watch_children_with_pidfd

log = get_logger("waterflow.agent")
_task_decoder = msgspec.json.Decoder(JobTask)
_identity_decoder = msgspec.json.Decoder(JobTaskIdentity)
_cancel_decoder = msgspec.json.Decoder(CancelJob)


class Agent:
    def __init__(self, settings: AgentSettings, js: JetStreamContext) -> None:
        self.settings = settings
        self.js = js
        self.name = subjects.check_token(settings.agent_name, "agent name")
        self.work_dir = Path(settings.work_dir)
        self._active = 0
        """Job tasks running now (at most ``max_concurrent_steps``)."""
        self._slot_freed = asyncio.Event()
        self.stopping = asyncio.Event()
        """Set on shutdown: running steps stop and their tasks go back to the queue."""
        self._running: set[asyncio.Task[None]] = set()
        self._pullers: list[Puller] = []
        self._jobs: dict[str, JobRun] = {}
        """Job task key -> the job running here (for CancelJob and heartbeats)."""
        self.on_pinned_step: Callable[[], None] = lambda: None
        """Called when a step of a job only this agent can finish starts (the registration
        heartbeats soon, so the scheduler learns what it would lose with this agent)."""

    def cancel_job(self, command: CancelJob) -> None:
        """A CancelJob from the scheduler: stop that job task if it runs here."""
        job = self._jobs.get(command.key)
        if job is not None:
            job.cancel(command.reason, command.withdraw)

    @property
    def running_steps(self) -> list[str]:
        """Keys of the step attempts running here now (reported in the heartbeat)."""
        return sorted(job.current for job in self._jobs.values() if job.current)

    @property
    def pinned_steps(self) -> list[str]:
        """Keys of running steps of jobs only this agent can finish (``JobRun.holds_workspace``):
        if it is lost the scheduler fails them (``agents.fail_lost_steps``)."""
        return sorted(job.current for job in self._jobs.values() if job.current and job.holds_workspace)

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
                # keeps a task of another waiting. If two pullers get tasks for the last slot at
                # once, the one that comes second hands its task straight back. A group task is
                # a whole job: take them one at a time, so that jobs spread over the group's
                # agents instead of piling onto whichever fetched first.
                share = 1 if source.startswith("group ") else max(1, self.settings.max_concurrent_steps // len(self._pullers))
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
        """Run a fetched task in a free slot (or hand it back when another puller took the slot,
        or this agent is stopping: it may be a task it has just handed back itself)."""
        if self._active >= self.settings.max_concurrent_steps or self.stopping.is_set():
            await _hand_back(msg)
            return
        self._active += 1
        task = asyncio.create_task(self._execute(msg))
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._active -= 1
        self._slot_freed.set()

    async def _execute(self, msg: Msg) -> None:
        try:
            task = _task_decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            await self._report_malformed(msg, error)
            return
        bound = log.bind(run_id=task.run_id, job=task.job.id, task=task.task)
        if msg.metadata.num_delivered and msg.metadata.num_delivered > 1:
            # Delivered again: whoever had it first stopped answering (or handed it back). Never
            # run a second copy: say so, and the scheduler decides (``step_rules._interrupted``).
            bound.warning("job.redelivered", delivered=msg.metadata.num_delivered)
            await self.publish(sign_with_token(task.token, JobRan(
                run_id=task.run_id, job_id=task.job.id, task=task.task, agent=self.name, interrupted=True,
            )))
            await msg.ack()
            return
        keepalive = asyncio.create_task(_keep_in_progress(msg, self.settings.ack_wait / 3))
        # Registered before step.started is published: a cancel sent in answer to it must find the job.
        job = self._jobs[task.key] = JobRun(self, task, pinned=msg.subject == subjects.agent_tasks(self.name))
        try:
            ended = await job.run()
            if ended is Ended.SHUTDOWN:
                bound.info("job.handed_back")
                await msg.nak()
            else:
                await msg.ack()
        finally:
            self._jobs.pop(task.key, None)
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
        reason = f"agent {self.name} could not read this job's task: {str(error)[:500]}"
        for event in (
            StepFailed(run_id=task.run_id, job_id=task.job.id, step_index=task.from_step, attempt=task.attempt,
                       task=task.task, agent=self.name, retryable=False, error=reason),
            JobRan(run_id=task.run_id, job_id=task.job.id, task=task.task, agent=self.name, next_step=task.from_step + 1,
                   outcomes=(StepOutcome(task.from_step, task.attempt, "failed"),)),
        ):
            await self.publish(sign_with_token(task.token, event))
        await msg.term()

    async def publish(self, event: EventBase) -> None:
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
        self.stopping.set()
        self._slot_freed.set()
        if self._running:
            await asyncio.wait(self._running, timeout=15)


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
            agent.cancel_job(_cancel_decoder.decode(msg.data))
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
