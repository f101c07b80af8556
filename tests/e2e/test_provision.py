"""Streams and buckets as ``bus.provision`` makes them, against a real nats-server."""

from __future__ import annotations

import asyncio

import nats

from waterflow_common import bus, subjects


def test_the_task_stream_takes_a_consumer_for_each_of_more_than_a_thousand_agents(nats_url: str) -> None:
    """nats-server 2.15 caps a stream at 1000 consumers unless the stream sets its own limit."""

    async def scenario() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await bus.provision(js)
        await asyncio.gather(*(
            bus.ensure_consumer(js, subjects.TASKS_STREAM, bus.agent_consumer_config(f"a{i:04d}", 30.0)) for i in range(1010)
        ))
        info = await js.stream_info(subjects.TASKS_STREAM)
        assert info.state.consumer_count == 1010
        await nc.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_provision_brings_a_bucket_made_before_in_line(nats_url: str) -> None:
    """An upgrade: the runs bucket of an older version gets direct get and atomic batches."""

    async def scenario() -> None:
        from nats.js import api

        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await js.create_key_value(api.KeyValueConfig(bucket=subjects.RUNS_BUCKET))
        await bus.provision(js)
        config = (await js.stream_info(subjects.RUNS_STREAM)).config
        assert config.allow_direct and config.allow_atomic
        await nc.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
