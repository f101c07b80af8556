"""Reading a slice of a stream: everything stored so far under a filter, or that plus what comes.

Used by the API for a run's history and logs. An ephemeral consumer with no acks is the cheapest
way to read a filtered range; it is deleted right after (and expires by itself if we crash).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api


async def read_stored(js: JetStreamContext, stream: str, subject_filter: str, batch: int = 256) -> list[Msg]:
    """Every message currently stored in ``stream`` under ``subject_filter``, in order."""
    config = js_api.ConsumerConfig(
        ack_policy=js_api.AckPolicy.NONE,
        deliver_policy=js_api.DeliverPolicy.ALL,
        inactive_threshold=30.0,
        filter_subject=subject_filter,
    )
    psub = await js.pull_subscribe(subject_filter, durable=None, stream=stream, config=config)
    try:
        remaining = (await psub.consumer_info()).num_pending
        messages: list[Msg] = []
        while remaining > 0:
            try:
                got = await psub.fetch(min(batch, remaining), timeout=2.0)
            except asyncio.TimeoutError:
                break
            messages.extend(got)
            remaining -= len(got)
        return messages
    finally:
        await psub.unsubscribe()


async def follow(js: JetStreamContext, stream: str, subject_filter: str) -> AsyncIterator[Msg]:
    """Every stored message under ``subject_filter``, then new ones as they arrive, until closed."""
    sub = await js.subscribe(subject_filter, stream=stream, ordered_consumer=True, deliver_policy=js_api.DeliverPolicy.ALL)
    try:
        while True:
            try:
                yield await sub.next_msg(timeout=None)
            except asyncio.TimeoutError:
                continue
    finally:
        await sub.unsubscribe()
