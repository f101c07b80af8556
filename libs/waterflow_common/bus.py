"""Connecting to NATS and provisioning JetStream, the same way in every service.

Provisioning is idempotent and done by whichever service starts first: creating a stream or
bucket that exists with the same config is a no-op, and one whose config drifted (an upgrade) is
updated in place. Nobody has to run a setup step before the services start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.errors import AuthorizationError
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError

from . import limits, subjects
from .errors import InfrastructureError
from .log import get_logger
from .messages import EventBase, encode
from .settings import NatsSettings

log = get_logger("waterflow.bus")
T = TypeVar("T")

DUPLICATE_WINDOW = 600.0
"""Seconds JetStream remembers a Nats-Msg-Id: longer than any ack deadline, so a message
re-published after a crash is recognised as the same message."""

MAX_AGENTS = 100_000
"""Consumers allowed on the task stream: one per agent plus one per server group."""

STREAMS = (
    js_api.StreamConfig(
        name=subjects.EVENTS_STREAM,
        subjects=[subjects.ALL_EVENTS, subjects.ALL_TIMERS],
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        max_age=30 * 24 * 3600.0,
        duplicate_window=DUPLICATE_WINDOW,
        # Durable timers: JetStream publishes a scheduled copy of a wf.timers.* message to its
        # target (wf.events.<run>.timer.fired) when due, surviving restarts of everything.
        allow_msg_schedules=True,
    ),
    js_api.StreamConfig(
        name=subjects.TASKS_STREAM,
        subjects=[subjects.ALL_TASKS],
        retention=js_api.RetentionPolicy.WORK_QUEUE,
        storage=js_api.StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW,
        # Every agent has a consumer of its own here (fan-out tasks): nats-server >= 2.15 caps a
        # stream at 1000 consumers unless the stream says otherwise (found at 1000 agents).
        max_consumers=MAX_AGENTS,
    ),
    js_api.StreamConfig(
        name=subjects.TRIGGERS_STREAM,
        subjects=[subjects.ALL_TRIGGERS],
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        max_msgs_per_subject=100,
        duplicate_window=DUPLICATE_WINDOW,
        allow_msg_schedules=True,
    ),
    js_api.StreamConfig(
        name=subjects.LOGS_STREAM,
        subjects=[subjects.ALL_LOGS],
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        max_age=7 * 24 * 3600.0,
        duplicate_window=60.0,
    ),
    js_api.StreamConfig(
        name=subjects.DEAD_LETTERS_STREAM,
        subjects=[subjects.ALL_DEAD_LETTERS],
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        max_age=limits.DEAD_LETTERS_MAX_AGE_DAYS * 24 * 3600.0,
        max_msgs=limits.DEAD_LETTERS_MAX_MSGS,
        max_bytes=limits.DEAD_LETTERS_MAX_BYTES,
        discard=js_api.DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW,
    ),
)

AGENT_RECORD_MAX_AGE = 24 * 3600.0
"""Seconds an agent that stopped heartbeating stays listed (as offline) before its record expires."""

# ``direct``: reads use direct get, whose reply carries the raw value (a plain get returns it
# base64-encoded in JSON: 18% of the scheduler's time in the profile of docs/performance.md).
BUCKETS = (
    js_api.KeyValueConfig(bucket=subjects.RUNS_BUCKET, history=1, storage=js_api.StorageType.FILE, direct=True),
    js_api.KeyValueConfig(bucket=subjects.PLANS_BUCKET, history=1, storage=js_api.StorageType.FILE, direct=True),
    js_api.KeyValueConfig(bucket=subjects.CONCURRENCY_BUCKET, history=1, storage=js_api.StorageType.FILE, direct=True),
    js_api.KeyValueConfig(bucket=subjects.TRIGGERS_BUCKET, history=1, storage=js_api.StorageType.FILE, direct=True),
    js_api.KeyValueConfig(bucket=subjects.SECRETS_BUCKET, history=1, storage=js_api.StorageType.FILE, direct=True),
    js_api.KeyValueConfig(bucket=subjects.GROUPS_BUCKET, history=1, storage=js_api.StorageType.FILE, direct=True),
    js_api.KeyValueConfig(bucket=subjects.KEYS_BUCKET, history=1, storage=js_api.StorageType.FILE),
    # An agent rewrites its key every heartbeat; one that stopped ages out after AGENT_RECORD_MAX_AGE.
    js_api.KeyValueConfig(
        bucket=subjects.AGENTS_BUCKET, history=1, ttl=AGENT_RECORD_MAX_AGE, storage=js_api.StorageType.FILE, direct=True,
    ),
    js_api.KeyValueConfig(
        bucket=subjects.REMOVED_AGENTS_BUCKET, history=1, ttl=AGENT_RECORD_MAX_AGE, storage=js_api.StorageType.FILE,
        direct=True,
    ),
)
ATOMIC_BUCKETS = frozenset({subjects.RUNS_BUCKET})
"""Buckets written with atomic batches (``runstore.py``): their streams need ``allow_atomic``."""


async def connect(
    settings: NatsSettings,
    name: str,
    *,
    connect_timeout: float | None = None,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
    inbox_prefix: str | None = None,
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
    if inbox_prefix:
        options["inbox_prefix"] = inbox_prefix  # lets NATS permissions give each agent its own inboxes
    tls = _tls_context(settings)
    if tls is not None:
        options["tls"] = tls

    connected = False

    async def error_cb(error: Exception) -> None:
        if not connected and _is_auth_failure(error):
            # nats-py retries the first connection forever; waiting will not fix wrong
            # credentials, and raising here ends nats.connect() with this error.
            raise InfrastructureError(
                f"NATS at {settings.nats_url} rejected the credentials of user {settings.nats_user!r}: "
                "check WATERFLOW_NATS_USER / WATERFLOW_NATS_PASSWORD (or the creds file)"
            )
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
        nc = Client()
        try:
            await nc.connect(**options)  # type: ignore[arg-type]
            connected = True
            return nc
        except InfrastructureError:
            await _discard(nc)
            raise
        except Exception as error:  # nats raises several unrelated types for "not there yet"
            await _discard(nc)
            if deadline is not None and loop.time() >= deadline:
                raise
            log.info("nats.waiting", url=settings.nats_url, error=str(error) or type(error).__name__)
            await asyncio.sleep(0.5)


async def _discard(nc: Client) -> None:
    """Close a client whose first connection failed (else its socket leaks until collected)."""
    try:
        await nc.close()
    except Exception:
        pass


def _is_auth_failure(error: Exception) -> bool:
    text = str(error).lower()
    return isinstance(error, AuthorizationError) or "authorization violation" in text


def _tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """A client TLS context from ``nats_tls_ca`` / ``nats_tls_cert`` / ``nats_tls_key`` (None: plain)."""
    if not (settings.nats_tls_ca or settings.nats_tls_cert):
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.nats_tls_ca)
    if settings.nats_tls_cert:
        context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key)
    return context


async def provision(js: JetStreamContext, replicas: int = 1) -> None:
    """Create or update every stream and KV bucket Waterflow uses.

    ``replicas``: copies of each stream and bucket in a JetStream cluster (3 in production, so
    losing one server loses nothing); 1 for a single nats-server.
    """
    for config in STREAMS:
        config = dataclasses.replace(config, num_replicas=replicas)
        try:
            await js.add_stream(config)
        except BadRequestError:
            # Exists with another config (e.g. after an upgrade): bring it in line.
            await js.update_stream(config)
    for bucket in BUCKETS:
        bucket = dataclasses.replace(bucket, replicas=replicas)
        try:
            await js.key_value(bucket.bucket)
        except (BucketNotFoundError, NotFoundError):
            try:
                await js.create_key_value(bucket)
            except BadRequestError:
                await js.key_value(bucket.bucket)  # another service created it meanwhile
        await _ensure_bucket_options(js, bucket.bucket, atomic=bucket.bucket in ATOMIC_BUCKETS)


PROVISION_ATTEMPT_TIMEOUT = 20.0
"""Seconds one attempt at getting JetStream ready may take before it is abandoned and retried."""
PROVISION_MAX_DELAY = 10.0
"""Longest wait between two attempts (they start 0.5 s apart and double)."""


async def until_ready(
    step: Callable[[], Awaitable[T]], service: str, stop: asyncio.Event | None = None,
    *, attempt_timeout: float = PROVISION_ATTEMPT_TIMEOUT,
) -> T | None:
    """Run ``step`` (provisioning and opening what a service needs) until it succeeds; None if
    ``stop`` is set first.

    A JetStream that is not ready — a fresh cluster still electing its leader, a node down so no
    quorum, a server restarting — makes provisioning fail or time out, sometimes for minutes.
    A service waits it out, logging why at every attempt (``jetstream.not_ready``), and never
    exits for it: a supervisor restarting it would only start the same wait over.
    """
    delay = 0.5
    attempt = 0
    while True:
        attempt += 1
        try:
            result = await asyncio.wait_for(step(), attempt_timeout)
            if attempt > 1:
                log.info("jetstream.ready", service=service, attempts=attempt)
            return result
        except InfrastructureError:
            raise  # wrong credentials: waiting does not help
        except Exception as error:
            reason = str(error) or type(error).__name__
            log.warning("jetstream.not_ready", service=service, attempt=attempt, retry_in=delay, error=reason[:300])
        if stop is None:
            await asyncio.sleep(delay)
        else:
            try:
                await asyncio.wait_for(stop.wait(), delay)
                return None
            except asyncio.TimeoutError:
                pass
        delay = min(delay * 2, PROVISION_MAX_DELAY)


async def _ensure_bucket_options(js: JetStreamContext, bucket: str, atomic: bool) -> None:
    """Turn on direct get (and atomic batches) on a bucket's stream, also one created before."""
    info = await js.stream_info(f"KV_{bucket}")
    config = info.config
    if config.allow_direct and (config.allow_atomic or not atomic):
        return
    config.allow_direct = True
    if atomic:
        config.allow_atomic = True
    await js.update_stream(config)


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


def triggers_consumer_config() -> js_api.ConsumerConfig:
    """The durable consumer of trigger fires, shared by all API services (each fire starts one run)."""
    return js_api.ConsumerConfig(
        durable_name=subjects.TRIGGERS_CONSUMER,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        deliver_policy=js_api.DeliverPolicy.NEW,
        ack_wait=30.0,
        filter_subject=subjects.ALL_TRIGGER_FIRES,
    )


def _task_consumer(name: str, filter_subject: str, ack_wait: float) -> js_api.ConsumerConfig:
    return js_api.ConsumerConfig(
        # ``name`` too: nats-py then puts the filter into the create subject, which NATS
        # permissions can pin, so an agent cannot point a consumer at another group's tasks.
        name=name,
        durable_name=name,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_ack_pending=10_000,
        filter_subject=filter_subject,
    )


def agent_consumer_config(agent_name: str, ack_wait: float) -> js_api.ConsumerConfig:
    """The durable consumer of one agent's own subject (fan-out tasks addressed to it)."""
    return _task_consumer(subjects.agent_consumer(agent_name), subjects.agent_tasks(agent_name), ack_wait)


def group_consumer_config(group: str, ack_wait: float) -> js_api.ConsumerConfig:
    """The durable consumer shared by every agent of a group (work queue: each task to one)."""
    return _task_consumer(subjects.group_consumer(group), subjects.group_tasks(group), ack_wait)


async def ensure_consumer(js: JetStreamContext, stream: str, config: js_api.ConsumerConfig) -> None:
    """Create a durable consumer, or update it if it exists with another config."""
    try:
        await js.add_consumer(stream, config)
    except BadRequestError as error:
        assert config.durable_name is not None
        log.warning("consumer.recreate", stream=stream, consumer=config.durable_name, reason=error.description)
        try:
            await js.delete_consumer(stream, config.durable_name)
        except NotFoundError:
            pass  # the create failed for another reason (e.g. the server was busy): try again
        await js.add_consumer(stream, config)


async def publish_event(js: JetStreamContext, event: EventBase) -> js_api.PubAck:
    """Append ``event`` to its run's history (``wf.events.<run>.<type>``).

    The ``Nats-Msg-Id`` is the event's own id, so publishing the same event again (a retry after
    a crash, a second scheduler doing the same work) is dropped by JetStream within
    :data:`DUPLICATE_WINDOW`: every producer of events can simply publish again when unsure.
    """
    return await js.publish(subjects.event(event.run_id, event.type), encode(event),
                            headers={subjects.MSG_ID_HEADER: event.msg_id()})


async def close(nc: Client, timeout: float = 3.0) -> None:
    """Drain the connection (finish in-flight handlers, flush publishes), but never hang on it:
    a drain can wait forever on a pull subscription whose fetch was cancelled."""
    try:
        await asyncio.wait_for(nc.drain(), timeout)
    except Exception:
        pass
    if not nc.is_closed:
        await nc.close()
