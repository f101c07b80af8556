"""The run store against a real nats-server: a header key per run, a key per touched step,
atomic batches with revision checks (see ``libs/waterflow_common/runstore.py``)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import nats
import pytest

from waterflow.embedded import free_port, nats_server_binary, wait_for_port
from waterflow_common import bus, subjects
from waterflow_common.runstore import MAX_BATCH, RunStore, WriteConflict, step_key
from waterflow_common.state import initial_state
from waterflow_compiler import compile_workflow

NOW = datetime(2026, 11, 25, tzinfo=timezone.utc)


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [nats_server_binary(), "-js", "-sd", str(tmp_path / "js"), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, 10, server)
    yield f"nats://127.0.0.1:{port}"
    server.kill()
    server.wait()


def _plan(steps: int, jobs: int = 1):
    lines = ["jobs:"]
    for j in range(jobs):
        lines += [f"  j{j}:", "    runs-on: g", "    steps:"]
        lines += [f"      - run: echo {i}" for i in range(steps)]
    plan, diagnostics = compile_workflow("\n".join(lines) + "\n", "w.yml")
    assert plan is not None, diagnostics
    return plan


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
        await store.create(initial_state("r1", plan, NOW))
        stored = await store.load("r1", plan)
        assert stored is not None
        assert [s.name for s in stored.state.jobs["j0"].steps] == [s.name for s in plan.jobs["j0"].steps]
        assert stored.steps == {}
        assert await store.load("r-none", plan) is None
        header = await store.load_header("r1")
        assert header is not None and header.jobs["j0"].steps == []
        await nc.close()

    _run(scenario())


def test_an_event_writes_the_header_and_only_the_steps_it_changed(nats_url: str) -> None:
    plan = _plan(steps=400)

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        await store.create(initial_state("r1", plan, NOW))
        stored = await store.load("r1", plan)
        assert stored is not None
        step = stored.state.jobs["j0"].steps[7]
        step.status, step.attempt, step.agent = "running", 1, "a1"
        saved = await store.save(stored, stored.state)
        assert list(saved.steps) == [step_key("r1", "j0", 7)]
        # The header does not grow with the steps: it is the same size as for a 1-step run.
        assert len(saved.header) < 1000

        step.status = "succeeded"
        nxt = stored.state.jobs["j0"].steps[8]
        nxt.status = "dispatched"
        saved = await store.save(saved, stored.state)
        assert set(saved.steps) == {step_key("r1", "j0", 7), step_key("r1", "j0", 8)}
        assert await store.save(saved, stored.state) is saved  # nothing changed: nothing written

        again = await store.load("r1", plan)
        assert again is not None
        assert again.state.jobs["j0"].steps[7].status == "succeeded"
        assert again.state.jobs["j0"].steps[8].status == "dispatched"
        assert again.state.jobs["j0"].steps[9].status == "pending"
        assert again.revision == saved.revision and again.steps == saved.steps
        await nc.close()

    _run(scenario())


def test_the_second_of_two_concurrent_writers_conflicts_and_writes_nothing(nats_url: str) -> None:
    plan = _plan(steps=3)

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        await store.create(initial_state("r1", plan, NOW))
        first = await store.load("r1", plan)
        second = await store.load("r1", plan)
        assert first is not None and second is not None
        first.state.jobs["j0"].steps[0].status = "running"
        await store.save(first, first.state)
        # The loser changed another step too: the batch is all or nothing.
        second.state.jobs["j0"].steps[0].status = "cancelled"
        second.state.jobs["j0"].steps[2].status = "skipped"
        with pytest.raises(WriteConflict):
            await store.save(second, second.state)
        now = await store.load("r1", plan)
        assert now is not None
        assert [s.status for s in now.state.jobs["j0"].steps] == ["running", "pending", "pending"]
        await nc.close()

    _run(scenario())


def test_a_change_of_more_steps_than_one_batch_holds_is_stored_whole(nats_url: str) -> None:
    plan = _plan(steps=700, jobs=2)  # 1400 steps: two batches

    async def scenario() -> None:
        nc, store = await _store(nats_url)
        await store.create(initial_state("r1", plan, NOW))
        stored = await store.load("r1", plan)
        assert stored is not None
        for job in stored.state.jobs.values():
            job.status = "cancelled"
            for step in job.steps:
                step.status = "cancelled"
        saved = await store.save(stored, stored.state)
        assert len(saved.steps) == 1400 > MAX_BATCH
        again = await store.load("r1", plan)
        assert again is not None
        assert {s.status for job in again.state.jobs.values() for s in job.steps} == {"cancelled"}
        assert again.steps == saved.steps
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
        stored.state.jobs["j0"].steps[1].status = "running"
        await store.save(stored, stored.state)
        assert await store.run_ids() == ["r0003", "r0002", "r0001"]
        await nc.close()

    _run(scenario())
