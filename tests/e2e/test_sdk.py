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
