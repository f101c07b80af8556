"""Run many lightweight agents in one process (for bench/scale.py and the 200-agent e2e test):
one NATS connection, N Agent objects, each registering under its own name and pulling its own
task subject (fan-out). The real agent is one process per server; this only saves memory when
a thousand of them must run on one test machine.

    python bench/many_agents.py NATS_URL PREFIX COUNT GROUP WORK_DIR

Prints ``ready`` once every agent has registered; runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from waterflow_agent.registration import Registration
from waterflow_agent.service import Agent
from waterflow_common import bus
from waterflow_common.log import configure
from waterflow_common.settings import AgentSettings, NatsSettings


async def main(url: str, prefix: str, count: int, group: str, work_dir: str) -> None:
    configure("warning")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    nc = await bus.connect(NatsSettings(nats_url=url), f"many-agents-{prefix}", connect_timeout=10)
    js = nc.jetstream()
    tasks: list[asyncio.Task[None]] = []
    registrations = []
    for index in range(count):
        name = f"{prefix}-{index:03d}"
        settings = AgentSettings(
            nats_url=url, agent_name=name, groups=[group], work_dir=str(Path(work_dir) / name),
            max_concurrent_steps=1, heartbeat_interval=5.0,
        )
        agent = Agent(settings, js)
        registration = Registration(settings, js, lambda a=agent: a.running_steps, lambda a=agent: a.pinned_steps)
        agent.on_steps_changed = registration.nudge
        registrations.append(registration)
        await registration.beat()
        tasks.append(asyncio.create_task(registration.run(stop)))
        tasks.append(asyncio.create_task(agent.pull(f"agent {name}", bus.agent_consumer_config(name, 30.0), stop)))
    print("ready", flush=True)
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    await nc.drain()


if __name__ == "__main__":
    url, prefix, count, group, work_dir = sys.argv[1:6]
    asyncio.run(main(url, prefix, int(count), group, work_dir))
