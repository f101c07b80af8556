"""Connecting to NATS and provisioning JetStream, the same way in every service.

Provisioning is idempotent and done by whichever service starts first: creating a stream or
bucket that exists with the same config is a no-op, and one whose config drifted (an upgrade) is
updated in place. Nobody has to run a setup step before the services start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError

from . import subjects
from .log import get_logger
from .settings import NatsSettings

log = get_logger("waterflow.bus")

DUPLICATE_WINDOW = 600.0
"""Seconds JetStream remembers a Nats-Msg-Id: longer than any ack deadline, so a message
re-published after a crash is recognised as the same message."""

STREAMS = (
    js_api.StreamConfig(
        name=subjects.EVENTS_STREAM,
        subjects=[subjects.ALL_EVENTS],
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        max_age=30 * 24 * 3600.0,
        duplicate_window=DUPLICATE_WINDOW,
    ),
    js_api.StreamConfig(
        name=subjects.TASKS_STREAM,
        subjects=[subjects.ALL_TASKS],
        retention=js_api.RetentionPolicy.WORK_QUEUE,
        storage=js_api.StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW,
    ),
    js_api.StreamConfig(
        name=subjects.LOGS_STREAM,
        subjects=[subjects.ALL_LOGS],
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        max_age=7 * 24 * 3600.0,
        duplicate_window=60.0,
    ),
)

BUCKETS = (
    js_api.KeyValueConfig(bucket=subjects.RUNS_BUCKET, history=1, storage=js_api.StorageType.FILE),
    js_api.KeyValueConfig(bucket=subjects.PLANS_BUCKET, history=1, storage=js_api.StorageType.FILE),
)


async def connect(
    settings: NatsSettings,
    name: str,
    *,
    connect_timeout: float | None = None,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
) -> Client:
    """Connect, retrying the first connection until ``connect_timeout`` (None: forever).

    After the first connection, nats-py reconnects by itself forever; services never exit
    because NATS went away for a while.
    """
    options: dict[str, object] = {
        "servers": [u.strip() for u in settings.nats_url.split(",") if u.strip()],
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 2,
        "allow_reconnect": True,
    }
    if settings.nats_user:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password or ""
    if settings.nats_token:
        options["token"] = settings.nats_token
    if settings.nats_creds:
        options["user_credentials"] = settings.nats_creds

    async def error_cb(error: Exception) -> None:
        log.warning("nats.error", error=str(error) or type(error).__name__)

    async def disconnected_cb() -> None:
        log.warning("nats.disconnected")

    async def reconnected_cb() -> None:
        log.info("nats.reconnected")
        if on_reconnect is not None:
            await on_reconnect()

    options.update(error_cb=error_cb, disconnected_cb=disconnected_cb, reconnected_cb=reconnected_cb)
    loop = asyncio.get_running_loop()
    deadline = None if connect_timeout is None else loop.time() + connect_timeout
    while True:
        try:
            return await nats.connect(**options)  # type: ignore[arg-type]
        except Exception as error:  # nats raises several unrelated types for "not there yet"
            if deadline is not None and loop.time() >= deadline:
                raise
            log.info("nats.waiting", url=settings.nats_url, error=str(error) or type(error).__name__)
            await asyncio.sleep(0.5)


async def provision(js: JetStreamContext) -> None:
    """Create or update every stream and KV bucket Waterflow uses."""
    for config in STREAMS:
        try:
            await js.add_stream(config)
        except BadRequestError:
            # Exists with another config (e.g. after an upgrade): bring it in line.
            await js.update_stream(config)
    for bucket in BUCKETS:
        try:
            await js.key_value(bucket.bucket)
        except (BucketNotFoundError, NotFoundError):
            try:
                await js.create_key_value(bucket)
            except BadRequestError:
                await js.key_value(bucket.bucket)  # another service created it meanwhile


def scheduler_consumer_config() -> js_api.ConsumerConfig:
    from .messages import SCHEDULER_INPUTS

    return js_api.ConsumerConfig(
        durable_name=subjects.SCHEDULER_CONSUMER,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_wait=30.0,
        max_ack_pending=10_000,
        filter_subjects=[subjects.events_of_type(t) for t in SCHEDULER_INPUTS],
    )


def group_consumer_config(group: str, ack_wait: float) -> js_api.ConsumerConfig:
    return js_api.ConsumerConfig(
        durable_name=subjects.group_consumer(group),
        ack_policy=js_api.AckPolicy.EXPLICIT,
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_ack_pending=10_000,
        filter_subject=subjects.group_tasks(group),
    )


async def ensure_consumer(js: JetStreamContext, stream: str, config: js_api.ConsumerConfig) -> None:
    """Create a durable consumer, or update it if it exists with another config."""
    try:
        await js.add_consumer(stream, config)
    except BadRequestError:
        assert config.durable_name is not None
        await js.delete_consumer(stream, config.durable_name)
        await js.add_consumer(stream, config)
