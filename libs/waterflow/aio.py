"""The asynchronous SDK, for asyncio programs (a bot, a controller, a FastAPI app):

    >>> from waterflow import AsyncClient
    >>> async with AsyncClient() as client:           # WATERFLOW_API_URL / WATERFLOW_API_KEY
    ...     run = await client.submit(open("deploy.yml").read(), inputs={"version": "1.2.3"})
    ...     async for item in client.watch(run["id"]):
    ...         print(item)
    ...     state = await client.wait(run["id"])

The same calls as :class:`waterflow.Client` for runs (submit, get, list, cancel, retry, logs,
events, watch, wait) and agents, over aiohttp; the paths and bodies come from the same helpers,
so the two clients cannot drift apart.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from .client import DEFAULT_URL, TERMINAL, ApiError, list_query, problem_error, run_path, submit_body


class AsyncClient:
    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get("WATERFLOW_API_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = (api_key if api_key is not None else os.environ.get("WATERFLOW_API_KEY")) or None
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._session = aiohttp.ClientSession(headers=headers)
        return self._session

    async def _json(self, method: str, path: str, body: bytes | None = None) -> Any:
        headers = {"Content-Type": "application/json"} if body else {}
        try:
            async with self._http().request(method, self.url + path, data=body, headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise problem_error(response.status, raw)
                return json.loads(raw)
        except aiohttp.ClientError as error:
            raise ApiError(0, f"cannot reach the Waterflow API at {self.url}: {error}") from None

    async def submit(
        self, workflow: str, filename: str = "workflow.yml", inputs: dict[str, Any] | None = None,
        workflows: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return await self._json("POST", "/v1/workflows", submit_body(workflow, filename, inputs, workflows))

    async def get(self, run_id: str) -> dict[str, Any]:
        return await self._json("GET", run_path(run_id))

    async def list(self, limit: int = 50, before: str | None = None) -> list[dict[str, Any]]:
        return (await self._json("GET", f"/v1/workflows?{list_query(limit, before)}"))["runs"]

    async def cancel(self, run_id: str) -> dict[str, Any]:
        return await self._json("POST", run_path(run_id, "/cancel"), b"")

    async def retry(self, run_id: str) -> dict[str, Any]:
        return await self._json("POST", run_path(run_id, "/retry"), b"")

    async def logs(self, run_id: str) -> list[dict[str, Any]]:
        return (await self._json("GET", run_path(run_id, "/logs")))["lines"]

    async def events(self, run_id: str) -> list[dict[str, Any]]:
        return (await self._json("GET", run_path(run_id, "/events")))["events"]

    async def agents(self) -> list[dict[str, Any]]:
        return (await self._json("GET", "/v1/agents"))["agents"]

    async def watch(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """The run's events and log lines (``kind`` = event/log) as they happen, until it ends."""
        try:
            async with self._http().get(self.url + run_path(run_id, "/watch"),
                                        timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as response:
                if response.status >= 400:
                    raise problem_error(response.status, await response.read())
                async for line in response.content:
                    if line.strip():
                        item = json.loads(line)
                        if item.get("kind") != "keepalive":
                            yield item
        except aiohttp.ClientError as error:
            raise ApiError(0, f"cannot reach the Waterflow API at {self.url}: {error}") from None

    async def wait(self, run_id: str, timeout: float = 3600, poll: float = 0.2, attempt: int = 1) -> dict[str, Any]:
        """The run's final state (``attempt``: after :meth:`retry`, the attempt to wait for)."""
        deadline = time.monotonic() + timeout
        while True:
            state = await self.get(run_id)
            if state["status"] in TERMINAL and state.get("attempt", 1) >= attempt:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {state['status']} after {timeout:g}s")
            await asyncio.sleep(poll)
