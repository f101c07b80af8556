"""The agent's registration: its AgentInfo in KV ``wf_agents``, rewritten every heartbeat.

Nobody deletes a registration. Health is read from the age of the latest record (see
:mod:`waterflow_common.agents`); on a clean shutdown the agent writes one last record with
``stopped=True`` so it shows offline at once instead of after a dozen missed heartbeats. The
bucket's ``max_age`` expires the record of an agent that never comes back.

A heartbeat that fails (NATS away) is logged and retried at the next tick; the first one after
a reconnection re-announces the agent.
"""

from __future__ import annotations

import asyncio
import platform
import socket
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from waterflow_common import subjects
from waterflow_common.agents import AgentInfo, NodeSpec
from waterflow_common.log import get_logger
from waterflow_common.messages import encode, utcnow
from waterflow_common.settings import AgentSettings

log = get_logger("waterflow.agent.registration")


def waterflow_version() -> str:
    try:
        from importlib.metadata import version

        return version("waterflow")
    except Exception:  # noqa: BLE001 - not installed as a distribution (a source checkout)
        return "0+unknown"


def node_specs(settings: AgentSettings) -> tuple[NodeSpec, ...]:
    """The nodes this agent can run now: built-ins, entry points and its plugin directory (read
    at every heartbeat, so a plugin added, changed or broken shows up without a restart).

    Imported lazily: the catalog is optional, and a broken plugin must not stop registration.
    """
    try:
        from waterflow_agent.nodes import catalog
        from waterflow_agent.nodes.registry import agent_registry, default_plugin_dir
    except ImportError:
        return ()
    describe: Callable[..., Sequence[dict[str, Any]]] | None = getattr(catalog, "describe", None)
    if describe is None:
        return ()
    try:
        specs = describe(agent_registry(default_plugin_dir(settings)))
        return tuple(msgspec.convert(dict(spec), NodeSpec, strict=False) for spec in specs)
    except Exception as error:  # noqa: BLE001 - a broken node catalog must not stop registration
        log.warning("nodes.describe_failed", error=str(error) or type(error).__name__)
        return ()


class Registration:
    """Keeps one agent's record fresh; ``running()`` reports the step keys it runs right now,
    ``pinned()`` those of them that only this agent can run (its own subject)."""

    def __init__(
        self,
        settings: AgentSettings,
        js: JetStreamContext,
        running: Callable[[], Sequence[str]],
        pinned: Callable[[], Sequence[str]] = lambda: (),
    ) -> None:
        self.settings = settings
        self.js = js
        self.name = subjects.check_token(settings.agent_name, "agent name")
        self._running = running
        self._pinned = pinned
        self._kv: KeyValue | None = None
        self.started_at = utcnow()
        self._nodes: tuple[NodeSpec, ...] | None = None
        self._wake = asyncio.Event()

    def info(self, *, stopped: bool = False, now: datetime | None = None) -> AgentInfo:
        self._nodes = node_specs(self.settings)
        running = tuple(self._running())
        return AgentInfo(
            name=self.name,
            groups=tuple(self.settings.groups),
            labels=dict(self.settings.labels),
            version=waterflow_version(),
            os=platform.system().lower(),
            arch=platform.machine().lower(),
            hostname=socket.gethostname(),
            capacity=self.settings.max_concurrent_steps,
            running=len(running),
            running_steps=running,
            pinned_steps=tuple(self._pinned()),
            started_at=self.started_at,
            heartbeat_at=now or utcnow(),
            heartbeat_interval=self.settings.heartbeat_interval,
            stopped=stopped,
            nodes=self._nodes,
        )

    async def beat(self, *, stopped: bool = False) -> bool:
        """Write the record once; False (and a log line) if NATS did not store it."""
        try:
            if self._kv is None:
                self._kv = await self.js.key_value(subjects.AGENTS_BUCKET)
            await self._kv.put(self.name, encode(self.info(stopped=stopped)))
            return True
        except Exception as error:  # noqa: BLE001 - NATS away: log, retry at the next tick
            log.warning("heartbeat.failed", agent=self.name, error=str(error) or type(error).__name__)
            return False

    def nudge(self) -> None:
        """Heartbeat soon (after a reconnection, or when a pinned step started): at most one
        extra heartbeat per ``heartbeat_interval / 5``, however many steps start meanwhile."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat every ``heartbeat_interval`` until ``stop``; then say goodbye."""
        ok = True
        loop = asyncio.get_running_loop()
        min_gap = self.settings.heartbeat_interval / 5
        while not stop.is_set():
            beat_ok = await self.beat()
            last = loop.time()
            if beat_ok and not ok:
                log.info("heartbeat.resumed", agent=self.name)
            ok = beat_ok
            self._wake.clear()
            waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())}
            _, pending = await asyncio.wait(waiters, timeout=self.settings.heartbeat_interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
            if self._wake.is_set() and not stop.is_set():  # coalesce nudges: one write per min_gap
                await asyncio.sleep(max(0.0, last + min_gap - loop.time()))
        await self.beat(stopped=True)
