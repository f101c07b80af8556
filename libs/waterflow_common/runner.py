"""Entry point shared by every service: settings, logging, signals, clean shutdown.

Each service exposes ``serve(settings, stop)``; this runs it until SIGINT/SIGTERM sets ``stop``,
so Ctrl-C (or ``kill``) lets in-flight work finish its current message instead of dying mid-write.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from . import log as logging_setup
from .settings import NatsSettings, load

S = TypeVar("S", bound=NatsSettings)


async def _main(settings: S, serve: Callable[[S, asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


def run_service(
    name: str,
    settings_type: type[S],
    serve: Callable[[S, asyncio.Event], Awaitable[None]],
    overrides: Mapping[str, Any] | None = None,
) -> None:
    settings = load(settings_type, overrides)
    logging_setup.configure(settings.log_level, settings.log_format, service=name)
    asyncio.run(_main(settings, serve))
