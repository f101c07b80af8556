"""The API service: an aiohttp server in front of NATS (several may run behind a balancer)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from waterflow_common import bus
from waterflow_common.groups import load_provider
from waterflow_common.log import get_logger
from waterflow_common.settings import ApiSettings

from .app import make_app
from .runs import Runs
from .triggers import Triggers, serve_fires

log = get_logger("waterflow.api")


async def serve(settings: ApiSettings, stop: asyncio.Event) -> None:
    nc = await bus.connect(settings, "waterflow-api")
    runs = Runs(nc, settings.compile_timeout)
    runner = web.AppRunner(make_app(runs, settings.api_key, load_provider(settings.server_groups)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    await site.start()
    # Listening before JetStream is ready: /v1/health says 503 "starting" meanwhile (and every
    # NATS-backed route 503), so a load balancer or `waterflow up` sees why it is not ready.
    log.info("api.listening", url=f"http://{settings.api_host}:{settings.api_port}")

    async def open_runs() -> None:
        await bus.provision(nc.jetstream(), settings.stream_replicas)
        await runs.open()

    if await bus.until_ready(open_runs, "api", stop) is None and stop.is_set():
        await runner.cleanup()
        await bus.close(nc)
        return
    log.info("api.ready", url=f"http://{settings.api_host}:{settings.api_port}", auth=bool(settings.api_key))
    fires = asyncio.create_task(serve_fires(Triggers(runs), stop))  # schedules and webhooks -> runs
    await stop.wait()
    await runner.cleanup()
    await asyncio.gather(fires, return_exceptions=True)
    await bus.close(nc)
