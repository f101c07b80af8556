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


async def serve_until_stopped(settings: S, serve: Callable[[S, asyncio.Event], Awaitable[None]]) -> None:
    """Run ``serve`` until SIGINT or SIGTERM sets its ``stop`` event."""
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
    hide_environment()
    asyncio.run(serve_until_stopped(settings, serve))


PR_SET_DUMPABLE = 4


def hide_environment() -> None:
    """Make this process non-dumpable (Linux): its ``/proc/<pid>/environ`` and memory, which
    hold NATS credentials and the API key, are then unreadable to other processes of the same
    user that are not root — a step's script, for one. Root still reads everything: agents that
    run untrusted steps should run as a user of their own (docs/guides/security.md)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (ImportError, OSError, AttributeError):
        pass
