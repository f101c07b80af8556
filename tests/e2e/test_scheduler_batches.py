"""A run's events fetched together are applied together: one state write for the burst an agent
publishes while it runs a job, and still each bad event found and moved aside on its own."""

from __future__ import annotations

import asyncio

import nats

from test_scheduler_cache import _scheduler
from waterflow_common import bus, subjects
from waterflow_common.messages import JobRan, RunCreated, StepStarted, StepSucceeded, encode
from waterflow_common.runstore import RunStore
from waterflow_common.state import encode_plan, initial_state
from waterflow_compiler import compile_workflow

WORKFLOW = "jobs:\n  work:\n    runs-on: local\n    steps:\n" + "".join(f"      - run: echo {i}\n" for i in range(3))


async def _fetch(js: nats.js.JetStreamContext, count: int) -> list:  # type: ignore[type-arg]
    """The scheduler's own consumer, as the service pulls it."""
    await bus.ensure_consumer(js, subjects.EVENTS_STREAM, bus.scheduler_consumer_config())
    psub = await js.pull_subscribe_bind(bus.scheduler_consumer_config().durable_name, subjects.EVENTS_STREAM)
    msgs: list = []  # type: ignore[type-arg]
    while len(msgs) < count:
        msgs += await psub.fetch(count - len(msgs), timeout=5)
    return msgs


def test_a_burst_of_one_runs_events_is_one_state_write(nats_url: str) -> None:
    plan, diagnostics = compile_workflow(WORKFLOW, "w.yml")
    assert plan is not None, diagnostics

    async def scenario() -> None:
        scheduler = await _scheduler(nats_url)
        js, store = scheduler.js, RunStore(scheduler.nc)
        created = RunCreated(run_id="rburst", workflow=plan.name)
        await (await js.key_value(subjects.PLANS_BUCKET)).create("rburst", encode_plan(plan))
        await store.create(initial_state("rburst", plan, created.at))
        await bus.publish_event(js, scheduler.signer.sign(created))
        await scheduler.handle_run(await _fetch(js, 1))
        before = await store.revision("rburst")
        sign = scheduler.signer.sign  # signs an agent's event as the task's agent would
        burst = [sign(StepStarted(run_id="rburst", job_id="work", step_index=i, attempt=1, agent="a", task=1))
                 for i in range(3)]
        burst[1:1] = [sign(StepSucceeded(run_id="rburst", job_id="work", step_index=0, attempt=1, agent="a", task=1))]
        burst[3:3] = [sign(StepSucceeded(run_id="rburst", job_id="work", step_index=1, attempt=1, agent="a", task=1))]
        burst += [sign(StepSucceeded(run_id="rburst", job_id="work", step_index=2, attempt=1, agent="a", task=1)),
                  sign(JobRan(run_id="rburst", job_id="work", task=1, agent="a"))]
        for event in burst:
            await bus.publish_event(js, event)
        await scheduler.handle_run(await _fetch(js, len(burst)))
        stored = await store.load("rburst", plan)
        assert stored is not None and stored.state.status == "succeeded"
        assert [s.status for s in stored.state.jobs["work"].steps] == ["succeeded"] * 3
        assert await store.revision("rburst") == (before or 0) + 1  # seven events, one write
        await scheduler.nc.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_events_that_cannot_be_applied_together_are_moved_aside_one_by_one(nats_url: str) -> None:
    """Two events of a run that does not exist, in one fetch: the batch fails, and each event is
    then handled alone and becomes its own dead letter."""

    async def scenario() -> None:
        scheduler = await _scheduler(nats_url)
        js = scheduler.js
        before = (await js.stream_info(subjects.DEAD_LETTERS_STREAM)).state.messages
        for i in range(2):
            event = scheduler.signer.sign(StepStarted(run_id="rnowhere", job_id="j", step_index=i, attempt=1, agent="a"))
            await js.publish(subjects.event("rnowhere", event.type), encode(event))
        await scheduler.handle_run(await _fetch(js, 2))
        after = (await js.stream_info(subjects.DEAD_LETTERS_STREAM)).state.messages
        assert after - before == 2
        await scheduler.nc.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
