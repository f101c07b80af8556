"""The SDK follows a run's live event stream (``/watch``): ``wait`` returns on ``run.completed``,
honours its timeout and the attempt of a retry; ``watch`` opens a dropped stream again without
repeating anything (the API is killed and restarted while a run is followed)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from waterflow import AsyncClient, Client
from waterflow.embedded import Stack

ONE_STEP = "name: w\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo one\n"
SLOW = "name: slow\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: sleep 30\n"


def test_wait_returns_the_final_state_of_the_run(client: Client) -> None:
    run_id = client.submit(ONE_STEP)["id"]
    state = client.wait(run_id, timeout=60)
    assert state["status"] == "succeeded" and state["id"] == run_id
    assert state["jobs"]["a"]["steps"][0]["status"] == "succeeded"
    assert client.wait(run_id, timeout=60)["status"] == "succeeded"  # already finished: at once


def test_wait_raises_timeout_error_when_the_run_goes_on(client: Client) -> None:
    run_id = client.submit(SLOW)["id"]
    with pytest.raises(TimeoutError, match=run_id):
        client.wait(run_id, timeout=1)

    async def scenario() -> None:
        async with AsyncClient(client.url) as aclient:
            with pytest.raises(TimeoutError, match=run_id):
                await aclient.wait(run_id, timeout=1)

    asyncio.run(scenario())
    client.cancel(run_id)
    assert client.wait(run_id, timeout=60)["status"] == "cancelled"


def test_wait_for_a_retry_waits_for_its_attempt(client: Client, tmp_path: Path) -> None:
    marker = tmp_path / "second-time"
    source = (f"name: flaky\njobs:\n  a:\n    runs-on: local\n    steps:\n"
              f"      - run: test -f {marker} || {{ touch {marker}; exit 1; }}\n")
    run_id = client.submit(source)["id"]
    assert client.wait(run_id, timeout=60)["status"] == "failed"
    client.retry(run_id)
    state = client.wait(run_id, timeout=60, attempt=2)
    assert (state["status"], state["attempt"]) == ("succeeded", 2)

    async def scenario() -> None:
        async with AsyncClient(client.url) as aclient:
            items = [item async for item in aclient.watch(run_id, attempt=2)]
            completions = [i["attempt"] for i in items if i["kind"] != "log" and i["type"] == "run.completed"]
            assert completions == [1, 2]
            again = await aclient.wait(run_id, timeout=60, attempt=2)
            assert again["status"] == "succeeded"

    asyncio.run(scenario())


def _retried_and_blocked(client: Client, directory: Path) -> tuple[str, Path]:
    """A run whose retry a scheduler has taken (attempt 2, running), held at its second step
    until the returned file exists."""
    marker, release = directory / "second-time", directory / "release"
    source = (f"name: flaky\njobs:\n  a:\n    runs-on: local\n    steps:\n"
              f"      - run: test -f {marker} || {{ touch {marker}; exit 1; }}\n"
              f"      - run: while [ ! -f {release} ]; do sleep 0.1; done\n")
    run_id = client.submit(source)["id"]
    assert client.wait(run_id, timeout=60)["status"] == "failed"
    client.retry(run_id)
    deadline = time.monotonic() + 10
    while client.get(run_id)["attempt"] != 2:
        assert time.monotonic() < deadline, "the retry was not taken"
        time.sleep(0.05)
    return run_id, release


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_wait_without_an_attempt_waits_for_the_attempt_the_run_is_on(client: Client, tmp_path: Path, flavour: str) -> None:
    """Once a retry is taken, a plain wait() must not return on attempt 1's run.completed
    (the stream replays it first) while attempt 2 still runs."""
    run_id, release = _retried_and_blocked(client, tmp_path)
    threading.Timer(1.0, release.touch).start()
    if flavour == "sync":
        state = client.wait(run_id, timeout=60)
    else:
        async def scenario() -> Any:
            async with AsyncClient(client.url) as aclient:
                return await aclient.wait(run_id, timeout=60)

        state = asyncio.run(scenario())
    assert (state["status"], state["attempt"]) == ("succeeded", 2)


def test_watch_survives_an_api_restart_and_repeats_nothing(fresh_stack: Stack) -> None:
    client = Client(fresh_stack.api_url)
    source = ("name: restart\njobs:\n  a:\n    runs-on: local\n    steps:\n"
              "      - run: echo before\n      - run: sleep 3; echo after\n")
    run_id = client.submit(source)["id"]
    items = []
    restarted = False
    for item in client.watch(run_id, timeout=120):
        items.append(item)
        if not restarted and item["kind"] != "log" and item["type"] == "step.started" and item["step_index"] == 1:
            fresh_stack.kill("api")  # the stream drops mid-run
            fresh_stack.restart("api")
            restarted = True
    assert restarted
    events = [(i["type"], i.get("job_id"), i.get("step_index")) for i in items if i["kind"] != "log"]
    assert events == [(e["type"], e.get("job_id"), e.get("step_index")) for e in client.events(run_id)]
    assert [i["text"] for i in items if i["kind"] == "log"] == [line["text"] for line in client.logs(run_id)]
    assert events[-1][0] == "run.completed"
