"""A scheduler's view of the groups defined through the API follows KV ``wf_groups`` live, on a
real nats-server: definitions stored before the watch, creates, edits and deletes arrive through
the watch, and each renewal of the watch swaps in a complete snapshot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import pytest

from waterflow_common import bus, group_store
from waterflow_common.group_store import StoredGroupProvider
from waterflow_common.groups import GroupDefinition


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_the_watch_follows_every_change(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group_store, "WATCH_RENEW_SECONDS", 0.5)  # renew several times during the test
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await bus.provision(js)
    writer, follower = StoredGroupProvider(), StoredGroupProvider()
    changes: list[int] = []
    await writer.put(js, GroupDefinition(name="before", agents=("a-1",)))
    task = asyncio.create_task(follower.follow(js, lambda: changes.append(len(follower.stored))))
    try:
        await until(lambda: "before" in follower.stored, "the definition stored before the watch")
        await writer.put(js, GroupDefinition(name="web", agents=("web-1",)))
        await until(lambda: "web" in follower.stored, "a new definition")
        await writer.edit(js, "web", lambda d: GroupDefinition(name="web", agents=(*d.agents, "web-2")))  # type: ignore[union-attr]
        await until(lambda: follower.stored.get("web") == GroupDefinition(name="web", agents=("web-1", "web-2")),
                    "an edit")
        assert follower.revisions["web"] == writer.revisions["web"]
        await writer.delete(js, "before")
        await until(lambda: "before" not in follower.stored, "a deletion")
        renewals = len(changes)
        await until(lambda: len(changes) >= renewals + 2, "two renewals of the watch")
        assert set(follower.stored) == {"web"}  # each renewal swapped in the complete snapshot
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await nc.close()
