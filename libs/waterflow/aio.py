"""The asynchronous SDK, for asyncio programs (a bot, a controller, a FastAPI app):

    >>> from waterflow import AsyncClient
    >>> async with AsyncClient() as client:           # WATERFLOW_API_URL / WATERFLOW_API_KEY
    ...     run = await client.submit(open("deploy.yml").read(), inputs={"version": "1.2.3"})
    ...     async for item in client.watch(run.id):
    ...         print(item)
    ...     state = await client.wait(run.id)

Every method of :class:`waterflow.Client`, awaited, over aiohttp, with the same typed results
(:mod:`waterflow.models`) and errors; each call's path, body and decoding come from
``waterflow._calls``, as the Client's do, so the two clients cannot drift apart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

import aiohttp
import msgspec

from . import _calls as calls
from . import models as m
from .client import (
    WATCH_SILENCE,
    Client,
    StreamPosition,
    _Reconnects,
    _StreamDropped,
    attempt_to_await,
    is_completion,
    problem_error,
    run_path,
    settings,
    undecodable,
    unreachable,
)

T = TypeVar("T")


class AsyncClient:
    """Asynchronous client (aiohttp): the methods of :class:`waterflow.Client`, awaited; ``watch``
    and ``iter_runs`` are async iterators. Use it as ``async with AsyncClient() as client:`` (or
    call :meth:`close`)."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.url, self.api_key = settings(url, api_key)
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session (``async with AsyncClient() as client:`` does it on exit)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._session = aiohttp.ClientSession(headers=headers)
        return self._session

    async def _send(self, method: str, path: str, body: Any = None, content_type: str | None = None,
                    headers: dict[str, str] | None = None) -> bytes:
        sent = dict(headers or {})
        if content_type:
            sent["Content-Type"] = content_type
        try:
            async with self._http().request(method, self.url + path, data=body, headers=sent,
                                            timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                raw = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise unreachable(self.url, error) from None
        if response.status >= 400:
            raise problem_error(response.status, raw)
        return raw

    async def _call(self, call: calls.Call[T]) -> T:
        raw = await self._send(call.method, call.path, call.body, call.content_type, call.headers)
        try:
            return call.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise undecodable(self.url, error) from None

    async def _json(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        return json.loads(await self._send(method, path, body, content_type or ("application/json" if body else None)))

    # The same methods as Client (docstrings copied from it below); only the transport differs.
    async def submit(
        self, workflow: str, filename: str = "workflow.yml", inputs: dict[str, Any] | None = None,
        workflows: dict[str, str] | None = None,
    ) -> m.Submitted:
        return await self._call(calls.submit(workflow, filename, inputs, workflows))

    async def validate(self, workflow: str, filename: str = "workflow.yml") -> m.Validation:
        return await self._call(calls.validate(workflow, filename))

    async def get(self, run_id: str) -> m.Run:
        return await self._call(calls.get(run_id))

    async def list(self, limit: int = 50, before: str | None = None) -> list[m.RunSummary]:
        return (await self._call(calls.page(limit, before))).runs

    async def runs_page(self, limit: int = 50, before: str | None = None) -> m.RunPage:
        return await self._call(calls.page(limit, before))

    async def iter_runs(self, page_size: int = 200) -> AsyncIterator[m.RunSummary]:
        before: str | None = None
        while True:
            page = await self._call(calls.page(page_size, before))
            for run in page.runs:
                yield run
            if not page.next:
                return
            before = page.next

    async def cancel(self, run_id: str) -> m.Accepted:
        return await self._call(calls.cancel(run_id))

    async def retry(self, run_id: str) -> m.Accepted:
        return await self._call(calls.retry(run_id))

    async def logs(self, run_id: str) -> list[m.LogLine]:
        return await self._call(calls.logs(run_id))

    async def events(self, run_id: str) -> list[m.Event]:
        return await self._call(calls.events(run_id))

    async def agents(self, group: str | None = None) -> list[m.Agent]:
        return await self._call(calls.agents(group))

    async def agent(self, name: str) -> m.Agent:
        return await self._call(calls.agent(name))

    async def groups(self) -> m.GroupList:
        return await self._call(calls.groups())

    async def group(self, name: str) -> m.Group:
        return await self._call(calls.group(name))

    async def create_group(
        self, name: str, *, description: str = "", agents: Sequence[str] = (), labels: dict[str, str] | None = None,
        include: Sequence[str] = (),
    ) -> m.Group:
        """Define server group ``name`` on the server (create, or replace its definition)."""
        return await self._call(calls.create_group(name, description, agents, labels, include))

    async def delete_group(self, name: str) -> m.GroupDeletion:
        """Delete the definition of a group made through the API (agents declaring it stay members)."""
        return await self._call(calls.delete_group(name))

    async def add_to_group(self, name: str, agent: str) -> m.Group:
        """Name ``agent`` in group ``name``'s definition, defining the group if it is not yet."""
        return await self._call(calls.add_to_group(name, agent))

    async def remove_from_group(self, name: str, agent: str) -> m.Group:
        """Take ``agent`` out of group ``name``'s definition (:class:`Conflict`: it is a member
        because it declares the group or its labels match)."""
        return await self._call(calls.remove_from_group(name, agent))

    async def remove_agent(self, name: str, force: bool = False) -> m.AgentRemoval:
        """Forget an agent, failing the steps only it could run (:class:`Conflict` while online unless ``force``)."""
        return await self._call(calls.remove_agent(name, force))

    async def nodes(self, group: str | None = None) -> list[m.Node]:
        return await self._call(calls.nodes(group))

    async def node(self, name: str) -> list[m.Node]:
        return await self._call(calls.node(name))

    async def put_file(self, path: str, object_name: str) -> m.StoredFile:
        with open(path, "rb") as body:
            raw = await self._send("PUT", calls.object_path(object_name), body, "application/octet-stream")
        return msgspec.json.decode(raw, type=m.StoredFile)

    async def get_file(self, object_name: str, path: str) -> None:
        try:
            async with self._http().get(self.url + calls.object_path(object_name),
                                        timeout=aiohttp.ClientTimeout(total=None, sock_read=self.timeout)) as response:
                if response.status >= 400:
                    raise problem_error(response.status, await response.read())
                with open(path, "wb") as out:
                    async for chunk in response.content.iter_chunked(256 * 1024):
                        out.write(chunk)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise unreachable(self.url, error) from None

    async def files(self) -> list[m.StoredFile]:
        return await self._call(calls.files())

    async def add_trigger(
        self, workflow: str, filename: str = "workflow.yml", inputs: dict[str, Any] | None = None,
        workflows: dict[str, str] | None = None,
    ) -> m.Trigger:
        return await self._call(calls.add_trigger(workflow, filename, inputs, workflows))

    async def triggers(self) -> list[m.Trigger]:
        return await self._call(calls.triggers())

    async def fire_trigger(
        self, trigger_id: str, inputs: dict[str, Any] | None = None, payload: dict[str, Any] | None = None,
        secret: str | None = None,
    ) -> m.Fired:
        return await self._call(calls.fire_trigger(trigger_id, inputs, payload, secret))

    async def delete_trigger(self, trigger_id: str) -> None:
        await self._call(calls.delete_trigger(trigger_id))

    async def dead_letters(self, limit: int = 50, before: int | None = None, run_id: str | None = None) -> list[m.DeadLetter]:
        """Messages a consumer moved aside, newest first (without their payloads)."""
        return (await self._call(calls.dead_letters(limit, before, run_id))).dead_letters

    async def dead_letter(self, seq: int) -> m.DeadLetter:
        """One dead letter with its payload."""
        return await self._call(calls.dead_letter(seq))

    async def set_secret(self, name: str, value: str) -> None:
        await self._call(calls.set_secret(name, value))

    async def secrets(self) -> list[m.Secret]:
        return await self._call(calls.secrets())

    async def delete_secret(self, name: str) -> None:
        await self._call(calls.delete_secret(name))

    async def watch(self, run_id: str, attempt: int = 1) -> AsyncIterator[m.Event | m.LogLine]:
        """The run's events and log lines (``kind`` = event/log) as they happen, until it ends:

            >>> async for item in client.watch(run_id):
            ...     print(item.text if item.kind == "log" else item.type)

        A stream that drops is opened again and what was already yielded is skipped, so every
        item comes once. ``attempt``: after :meth:`retry`, follow until that attempt finishes.
        Bound it with ``asyncio.timeout()`` (:meth:`wait` takes a ``timeout``).
        """
        seen, reconnects = StreamPosition(), _Reconnects(patience=self.timeout)
        completed = False
        while True:
            seen.restart()
            try:
                async for item in self._watch_once(run_id):
                    if seen.is_new(item):
                        completed = completed or is_completion(item, attempt)
                        yield item
                if completed:
                    return
                pause = 0.05  # ended on an earlier attempt's end: the retry was not taken yet
            except _StreamDropped as dropped:
                pause = reconnects.pause_after(dropped)
            await asyncio.sleep(pause)

    async def _watch_once(self, run_id: str) -> AsyncIterator[m.Event | m.LogLine]:
        connected = False
        try:
            async with self._http().get(
                self.url + run_path(run_id, "/watch"),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=WATCH_SILENCE),
            ) as response:
                if response.status >= 400:
                    raise problem_error(response.status, await response.read())
                connected = True
                async for line in response.content:
                    item = calls.watch_item(line)
                    if item is not None:
                        yield item
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            if connected:
                raise _StreamDropped(pause=0.1) from None
            raise _StreamDropped(pause=0.5, error=unreachable(self.url, error)) from None

    async def wait(self, run_id: str, timeout: float = 3600, poll: float = 0.2, attempt: int = 1) -> m.Run:
        """The run's final state, as soon as its ``run.completed`` event arrives on the live
        stream (``attempt``: after :meth:`retry`, the attempt to wait for; ``poll`` is unused)."""
        state = await self.get(run_id)
        following = attempt_to_await(state, attempt)
        if following is None:
            return state
        attempt = following
        try:
            async with asyncio.timeout(timeout), aclosing(self.watch(run_id, attempt=attempt)) as items:
                async for item in items:
                    if is_completion(item, attempt):
                        return await self.get(run_id)  # before the stream is closed (see Client.wait)
        except TimeoutError:
            raise TimeoutError(f"run {run_id} still {(await self.get(run_id))['status']} after {timeout:g}s") from None
        return await self.get(run_id)


def _share_docs() -> None:
    """Each AsyncClient method says what the Client method of the same name says (one text)."""
    for name, method in vars(AsyncClient).items():
        twin = getattr(Client, name, None)
        if callable(method) and not name.startswith("_") and not method.__doc__ and twin is not None:
            method.__doc__ = twin.__doc__


_share_docs()
