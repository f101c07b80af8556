"""The run store against a real nats-server: a header key per run, a key per touched step,
atomic batches with revision checks (see ``libs/waterflow_common/runstore.py``)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import nats
import pytest

from waterflow_common import bus, subjects
from waterflow_common.runstore import MAX_BATCH, MOVE_OUT_AT, MOVE_OUT_BYTES, RunStore, StoredRun, WriteConflict, step_key
from waterflow_common.state import initial_state
from waterflow_compiler import compile_workflow

NOW = datetime(2026, 11, 25, tzinfo=timezone.utc)


def _plan(steps: int, jobs: int = 1):  # type: ignore[no-untyped-def]
    lines = ["jobs:"]
    for j in range(jobs):
        lines += [f"  j{j}:", "    runs-on: g", "    steps:"]
        lines += [f"      - run: echo {i}" for i in range(steps)]
    plan, diagnostics = compile_workflow("\n".join(lines) + "\n", "w.yml")
    assert plan is not None, diagnostics
    return plan


async def _new_run(store: RunStore, plan) -> StoredRun:  # type: ignore[no-untyped-def]
    """Store run r1 as the API does at submit, and read it back as a scheduler does."""
    await store.create(initial_state("r1", plan, NOW))
    stored = await store.load("r1", plan)
    assert stored is not None
    return stored


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _store(url: str) -> tuple[nats.NATS, RunStore]:
    nc = await nats.connect(url)
    await bus.provision(nc.jetstream())
    return nc, RunStore(nc)


def test_untouched_steps_are_not_stored_and_come_back_from_the_plan(nats_url: str) -> None:
    plan = _plan(steps=5)

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        stored = await _new_run(store, plan)
        assert [s.name for s in stored.state.jobs["j0"].steps] == [s.name for s in plan.jobs["j0"].steps]
        assert stored.records == {}
        assert await store.load("r-none", plan) is None
        header = await store.load_header("r1")
        assert header is not None and header.jobs["j0"].steps == []
        await nc.close()

    _run(scenario())


def test_finished_steps_move_out_of_the_header_in_groups(nats_url: str) -> None:
    plan = _plan(steps=400)

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        stored = await _new_run(store, plan)
        state = stored.state
        sizes = []
        for index in range(MOVE_OUT_AT * 3):
            step = state.jobs["j0"].steps[index]
            step.status, step.attempt, step.agent = "running", 1, "a1"
            stored = await store.save(stored, state)
            step.status, step.exit_code = "succeeded", 0
            stored = await store.save(stored, state)
            sizes.append(len(stored.header))
            assert await store.save(stored, state) is stored  # nothing changed: nothing written
        # Every MOVE_OUT_AT finished steps, they leave the header for keys of their own.
        assert len(stored.records) == MOVE_OUT_AT * 3
        assert max(sizes) < sizes[0] + MOVE_OUT_AT * 400  # the header does not grow with the run
        header = await store.load_header("r1")
        assert header is not None and header.jobs["j0"].steps == []
        again = await store.load("r1", plan)
        assert again is not None
        assert again.state == state
        assert again.revision == stored.revision and again.records == stored.records
        assert [s.status for s in again.state.jobs["j0"].steps[MOVE_OUT_AT * 3 - 1:MOVE_OUT_AT * 3 + 1]] == ["succeeded", "pending"]
        await nc.close()

    _run(scenario())


def test_a_step_changed_again_comes_back_into_the_header_and_wins(nats_url: str) -> None:
    plan = _plan(steps=MOVE_OUT_AT + 1)

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        stored = await _new_run(store, plan)
        state = stored.state
        for step in state.jobs["j0"].steps[:MOVE_OUT_AT]:
            step.status = "failed"
        stored = await store.save(stored, state)
        assert len(stored.records) == MOVE_OUT_AT
        first = state.jobs["j0"].steps[0]
        first.status, first.attempt = "pending", 0  # as a retry of the run does
        first.attempts = []
        stored = await store.save(stored, state)
        again = await store.load("r1", plan)
        assert again is not None and again.state.jobs["j0"].steps[0].status == "pending"
        assert again.state == state
        await nc.close()

    _run(scenario())


def test_the_second_of_two_concurrent_writers_conflicts_and_writes_nothing(nats_url: str) -> None:
    plan = _plan(steps=MOVE_OUT_AT + 3)

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        await store.create(initial_state("r1", plan, NOW))
        for finished in (1, MOVE_OUT_AT):  # a plain update, then an atomic batch
            first = await store.load("r1", plan)
            second = await store.load("r1", plan)
            assert first is not None and second is not None
            first.state.jobs["j0"].steps[-1].status = "running"
            first.state.jobs["j0"].steps[-1].attempt += 1  # a change in each round
            await store.save(first, first.state)
            before = await store.load("r1", plan)
            for step in second.state.jobs["j0"].steps[:finished]:
                step.status = "cancelled"
            with pytest.raises(WriteConflict):
                await store.save(second, second.state)
            after = await store.load("r1", plan)
            assert after is not None and before is not None and after.state == before.state
            assert after.records == before.records
        await nc.close()

    _run(scenario())


def test_a_move_of_more_parts_than_one_batch_holds_is_stored_whole(nats_url: str) -> None:
    plan = _plan(steps=700, jobs=2)  # 1400 steps: two batches

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        stored = await _new_run(store, plan)
        for job in stored.state.jobs.values():
            job.status = "cancelled"
            for step in job.steps:
                step.status = "cancelled"
        saved = await store.save(stored, stored.state)
        assert len(saved.records) == 1400 > MAX_BATCH
        again = await store.load("r1", plan)
        assert again is not None
        assert {s.status for job in again.state.jobs.values() for s in job.steps} == {"cancelled"}
        assert again.records == saved.records
        await nc.close()

    _run(scenario())


def test_a_step_newer_than_its_header_is_a_torn_read_and_is_not_returned(nats_url: str) -> None:
    """Every batch ends with the header, so a stored step newer than the header means a write
    landed between reading the header and the steps: the read must be retried, not used."""
    plan = _plan(steps=2)

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        await store.create(initial_state("r1", plan, NOW))
        kv = await nc.jetstream().key_value(subjects.RUNS_BUCKET)
        await kv.put(step_key("r1", "j0", 0), b'{"index":0,"name":"x","status":"running"}')
        with pytest.raises(WriteConflict):
            await store.load("r1", plan, attempts=2)
        await nc.close()

    _run(scenario())


def test_run_ids_lists_runs_newest_first_without_their_steps(nats_url: str) -> None:
    plan = _plan(steps=2)

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        assert await store.run_ids() == []
        for run_id in ("r0001", "r0003", "r0002"):
            await store.create(initial_state(run_id, plan, NOW))
        stored = await store.load("r0002", plan)
        assert stored is not None
        for step in stored.state.jobs["j0"].steps:
            step.status = "succeeded"
        await store.save(stored, stored.state)
        assert await store.run_ids() == ["r0003", "r0002", "r0001"]
        await nc.close()

    _run(scenario())


FAN_OUT = """
jobs:
  prepare:
    runs-on: g
    steps:
      - run: echo ready
  everywhere:
    needs: prepare
    runs-on: {group: web, each: true}
    steps:
      - run: echo one
      - run: echo two
"""


def _fan_out_state(agents: int):  # type: ignore[no-untyped-def]
    """A fan-out run whose instances the state machine has just made (one per agent)."""
    from waterflow_common.messages import JobRan, RunCreated, StepStarted, StepSucceeded
    from waterflow_scheduler import machine

    plan, diagnostics = compile_workflow(FAN_OUT, "fan.yml")
    assert plan is not None, diagnostics
    created = RunCreated(run_id="r1", workflow=plan.name)
    state = initial_state("r1", plan, created.at)
    directory = {"web": [f"web-{i:04d}" for i in range(agents)]}
    machine.apply(state, plan, created, directory=directory)
    machine.apply(state, plan, StepStarted(run_id="r1", job_id="prepare", step_index=0, attempt=1, agent="a", task=1),
                  directory=directory)
    machine.apply(state, plan, StepSucceeded(run_id="r1", job_id="prepare", step_index=0, attempt=1, agent="a", task=1),
                  directory=directory)
    return plan, state, lambda: machine.apply(  # the agent hands the job back: the fan-out starts
        state, plan, JobRan(run_id="r1", job_id="prepare", task=1, agent="a"), directory=directory,
    )


def _finish_instance(state, plan, instance_id: str) -> None:  # type: ignore[no-untyped-def]
    """The agent of one fan-out instance runs both its steps (one job task) and hands it back."""
    from waterflow_common.messages import JobRan, StepStarted, StepSucceeded
    from waterflow_scheduler import machine

    for index in range(2):
        for event in (StepStarted, StepSucceeded):
            machine.apply(state, plan, event(run_id="r1", job_id=instance_id, step_index=index, attempt=1, agent="a", task=1))
    machine.apply(state, plan, JobRan(run_id="r1", job_id=instance_id, task=1, agent="a"))


def test_fan_out_instances_have_keys_of_their_own_and_come_back_in_order(nats_url: str) -> None:
    plan, state, finish_prepare = _fan_out_state(agents=30)

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        stored = await _new_run(store, plan)
        stored = await store.save(stored, state)
        finish_prepare()  # expands "everywhere" into 30 instances, each with its first step dispatched
        saved = await store.save(stored, state)
        assert len(state.jobs["everywhere"].instances) == 30
        loaded = await store.load("r1", plan)
        assert loaded is not None and loaded.state == state
        for instance_id in state.jobs["everywhere"].instances:
            _finish_instance(state, plan, instance_id)
        saved = await store.save(saved, state)
        assert len(saved.header) < 4000  # 30 instance ids, not 30 jobs with their steps
        loaded = await store.load("r1", plan)
        assert loaded is not None
        assert list(loaded.state.jobs) == list(state.jobs)
        assert loaded.state == state
        await nc.close()

    _run(scenario())


def test_a_fan_out_wider_than_a_batch_is_listed_only_once_all_its_instances_are_stored(nats_url: str) -> None:
    plan, state, finish_prepare = _fan_out_state(agents=1200)

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        stored = await _new_run(store, plan)
        stored = await store.save(stored, state)
        finish_prepare()  # 1200 instances, each with a dispatched step: too many for the header
        saved = await store.save(stored, state)
        assert len(saved.header) < MOVE_OUT_BYTES
        loaded = await store.load("r1", plan)
        assert loaded is not None and loaded.state == state
        first = state.jobs["everywhere"].instances[0]
        _finish_instance(state, plan, first)  # a live instance moved out comes back in as it changes
        saved = await store.save(saved, state)
        assert first.encode() in saved.header
        loaded = await store.load("r1", plan)
        assert loaded is not None and loaded.state == state
        for instance_id in state.jobs["everywhere"].instances:
            _finish_instance(state, plan, instance_id)
        saved = await store.save(saved, state)  # 1200 instances and 2400 steps move out: four batches
        assert len(saved.records) > 3 * MAX_BATCH
        loaded = await store.load("r1", plan)
        assert loaded is not None and loaded.state == state
        await nc.close()

    _run(scenario())


def test_instances_made_again_by_a_retry_overwrite_the_ones_left_behind(nats_url: str) -> None:
    from waterflow_common.messages import JobRan, RunRetryRequested, StepFailed, StepSkipped, StepStarted, StepSucceeded
    from waterflow_scheduler import machine

    plan, state, finish_prepare = _fan_out_state(agents=2)
    directory = {"web": ["web-0000", "web-0001"]}

    def apply(event) -> None:  # type: ignore[no-untyped-def]
        machine.apply(state, plan, event, directory=directory)

    def step(job: str, index: int, ok: bool, attempt: int = 1) -> None:
        apply(StepStarted(run_id="r1", job_id=job, step_index=index, attempt=attempt, agent="a", task=1))
        result = StepSucceeded if ok else StepFailed
        apply(result(run_id="r1", job_id=job, step_index=index, attempt=attempt, agent="a", task=1))

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        stored = await _new_run(store, plan)
        finish_prepare()
        step("everywhere-web-0000", 0, ok=True)
        step("everywhere-web-0000", 1, ok=True)
        apply(JobRan(run_id="r1", job_id="everywhere-web-0000", task=1, agent="a"))
        step("everywhere-web-0001", 0, ok=False)
        apply(StepSkipped(run_id="r1", job_id="everywhere-web-0001", step_index=1, reason="condition false", task=1))
        apply(JobRan(run_id="r1", job_id="everywhere-web-0001", task=1, agent="a"))
        assert state.status == "failed"
        stored = await store.save(stored, state)
        machine.apply(state, plan, RunRetryRequested(run_id="r1"), directory=directory)
        assert state.status == "running"
        stored = await store.save(stored, state)
        loaded = await store.load("r1", plan)
        assert loaded is not None and loaded.state == state
        await nc.close()

    _run(scenario())


def test_a_run_value_over_64_kb_is_stored_compressed_and_read_back_whole(nats_url: str) -> None:
    """A fan-out's first event decides a task per agent: its outbox alone can pass 1 MB."""
    from datetime import datetime, timezone

    from waterflow_common.state import Outgoing

    plan = _plan(steps=2)

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        stored = await _new_run(store, plan)
        state = stored.state
        at = datetime(2026, 11, 25, tzinfo=timezone.utc)
        state.outbox = [
            Outgoing(subject=f"wf.tasks.agent.a{i}", msg_id=f"r1:a{i}", data=b'{"step": "echo hello"}' * 40, at=at)
            for i in range(400)
        ]
        saved = await store.save(stored, state)
        assert len(saved.header) > MOVE_OUT_BYTES
        raw = (await (await nc.jetstream().key_value(subjects.RUNS_BUCKET)).get("r1")).value
        assert raw is not None and raw[:1] != b"{" and len(raw) < len(saved.header) // 5
        loaded = await store.load("r1", plan)
        assert loaded is not None and loaded.state == state
        await nc.close()

    _run(scenario())
