"""The SDK as a script uses it: the async client end to end, and both clients reading
WATERFLOW_API_URL / WATERFLOW_API_KEY like the CLI."""

from __future__ import annotations

import asyncio

import pytest

from waterflow import ApiError, AsyncClient, Client
from waterflow.embedded import Stack

HELLO = "name: sdk\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo from-async\n"


def test_async_client_submits_watches_and_waits(stack: Stack) -> None:
    async def scenario() -> None:
        async with AsyncClient(stack.api_url) as client:
            run = await client.submit(HELLO)
            kinds = [item["kind"] async for item in client.watch(run["id"])]
            assert "event" in kinds and "log" in kinds
            state = await client.wait(run["id"], timeout=60)
            assert state["status"] == "succeeded"
            assert "from-async" in [line["text"] for line in await client.logs(run["id"])]
            assert run["id"] in [r["id"] for r in await client.list(limit=10)]
            with pytest.raises(ApiError) as caught:
                await client.get("no-such-run")
            assert caught.value.status == 404

    asyncio.run(scenario())


def test_clients_read_the_environment_like_the_cli(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATERFLOW_API_URL", stack.api_url)
    monkeypatch.setenv("WATERFLOW_API_KEY", "from-env")
    assert Client().url == stack.api_url and Client().api_key == "from-env"
    assert AsyncClient().url == stack.api_url and AsyncClient().api_key == "from-env"
    assert Client(api_key="").api_key is None  # an explicit empty key means none


def test_results_are_typed_models_the_same_from_both_clients(stack: Stack) -> None:
    from waterflow import models
    from waterflow.client import InvalidRequest, NotFound

    client = Client(stack.api_url)
    submitted = client.submit(HELLO)
    assert isinstance(submitted, models.Submitted)
    run = client.wait(submitted.id, timeout=60)
    assert isinstance(run, models.Run) and run.done and run.status == "succeeded"
    step = run.jobs["a"].steps[0]
    assert isinstance(step, models.StepInfo) and step.exit_code == 0 and step.finished_at is not None
    assert [line.text for line in client.logs(run.id)] == ["from-async"]
    events = client.events(run.id)
    assert events[0].type == "run.created" and events[-1].type == "run.completed" and events[-1].seq
    assert {a.name: a.status for a in client.agents()}  # typed Agent records
    assert all(isinstance(a, models.Agent) for a in client.agents(group="local"))
    assert "local" in [g.name for g in client.groups().groups]
    assert client.group("local").members and client.agent(client.agents()[0].name).member_of
    assert {n.name for n in client.nodes()} >= {"shell"}
    assert submitted.id in [r.id for r in client.list(limit=50)]
    with pytest.raises(NotFound):
        client.get("no-such-run")
    with pytest.raises(InvalidRequest) as rejected:
        client.submit("name: bad\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo ${{ nope( }}\n", "bad.yml")
    assert rejected.value.diagnostics and rejected.value.diagnostics[0].path == "bad.yml"

    async def same_from_async() -> None:
        async with AsyncClient(stack.api_url) as aclient:
            assert await aclient.get(run.id) == run
            assert await aclient.logs(run.id) == client.logs(run.id)
            assert [r.id async for r in aclient.iter_runs(page_size=2)][:3] == [r.id for r in client.list(limit=3)]
            with pytest.raises(NotFound):
                await aclient.get("no-such-run")

    asyncio.run(same_from_async())
