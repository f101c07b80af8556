"""Two schedulers share a run: the one whose cached state is stale must never drop an event.

Each scheduler keeps the state it last wrote for a run and applies the next event to it; a
write conflicts (and re-reads) when another scheduler wrote since. An event that changes
nothing against a stale cache writes nothing, so no conflict reveals the staleness: the
scheduler must check before acking it (seen in the kill-9 durability test as a run stuck with
its last events acked but not applied).
"""

from __future__ import annotations

import asyncio

import nats

from waterflow_common import bus, subjects
from waterflow_common.messages import JobRan, RunCreated, StepFailed, StepStarted, TimerFired
from waterflow_common.runstore import RunStore
from waterflow_common.secrets import KvSecretProvider
from waterflow_common.signing import load_signer
from waterflow_common.settings import SchedulerSettings
from waterflow_common.state import encode_plan, initial_state
from waterflow_compiler import compile_workflow
from waterflow_scheduler.service import Scheduler

WORKFLOW = ("jobs:\n  work:\n    runs-on: local\n    steps:\n      - run: echo 0\n        retry: {attempts: 2}\n"
            + "".join(f"      - run: echo {i}\n" for i in range(1, 3)))


async def _scheduler(url: str) -> Scheduler:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await bus.provision(js)
    return Scheduler(
        SchedulerSettings(nats_url=url), nc, await js.key_value(subjects.PLANS_BUCKET),
        await js.key_value(subjects.CONCURRENCY_BUCKET), KvSecretProvider(await js.key_value(subjects.SECRETS_BUCKET)),
        await load_signer(js),
    )


def test_an_event_that_looks_stale_to_a_cached_state_is_applied_to_the_current_one(nats_url: str) -> None:
    plan, diagnostics = compile_workflow(WORKFLOW, "w.yml")
    assert plan is not None, diagnostics

    async def scenario() -> None:
        first, second = await _scheduler(nats_url), await _scheduler(nats_url)
        created = RunCreated(run_id="r1", workflow=plan.name)
        await (await first.js.key_value(subjects.PLANS_BUCKET)).create("r1", encode_plan(plan))
        await RunStore(first.nc).create(initial_state("r1", plan, created.at))

        await first._apply([created])  # first caches the run: job task 1 dispatched at step 0
        # second: attempt 1 fails, the agent hands the job back for a long retry backoff, the
        # timer fires and job task 2 is dispatched (attempt 2).
        await second._apply([
            StepStarted(run_id="r1", job_id="work", step_index=0, attempt=1, agent="a", task=1),
            StepFailed(run_id="r1", job_id="work", step_index=0, attempt=1, agent="a", task=1, exit_code=1, retry_delay=60.0),
            JobRan(run_id="r1", job_id="work", task=1, agent="a", next_step=0, retry_delay=60.0),
        ])  # applied together, as a burst of one run's events is
        await second._apply([TimerFired(run_id="r1", timer_id="retry-work-0-1-1", kind="retry", job_id="work",
                                        step_index=0, attempt=1, due_at=created.at)])
        # To first's cache task 2 was never dispatched, so its start looks like nothing to do.
        state, _, changed = await first._apply([StepStarted(run_id="r1", job_id="work", step_index=0, attempt=2,
                                                            agent="a", task=2)])
        assert changed and [s.status for s in state.jobs["work"].steps] == ["running", "pending", "pending"]
        assert state.jobs["work"].steps[0].attempt == 2

        stored = await RunStore(first.nc).load("r1", plan)
        assert stored is not None
        assert [s.status for s in stored.state.jobs["work"].steps] == ["running", "pending", "pending"]
        await first.nc.close()
        await second.nc.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
