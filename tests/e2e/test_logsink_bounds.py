"""A step's log cannot exhaust its agent (issue #13 row 12: 20 s of ``yes`` pushed an agent past
510 MB): lines beyond what can be stored in time are dropped and counted, and batches of long
lines still fit in one NATS message. Against a real nats-server."""

from __future__ import annotations

import asyncio

import nats

from waterflow_agent import logsink
from waterflow_agent.logsink import LogSink
from waterflow_common import bus, subjects
from waterflow_common.messages import LogBatch, StepTask
from waterflow_common.plan import StepPlan
from waterflow_common.streams import read_stored


def _task() -> StepTask:
    return StepTask(run_id="r1", job_id="j", step=StepPlan(index=0, name="s", run="yes"), attempt=1, group="g")


async def _stored_lines(js) -> list[str]:  # type: ignore[no-untyped-def]
    import msgspec

    msgs = await read_stored(js, subjects.LOGS_STREAM, subjects.run_logs("r1"))
    return [line.text for m in msgs for line in msgspec.json.decode(m.data, type=LogBatch).lines]


def test_a_flood_of_output_is_bounded_and_the_drop_is_said(nats_url: str) -> None:
    async def scenario() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await bus.provision(js)
        sink = LogSink(js, _task())
        peak = 0
        for i in range(200_000):  # far faster than anything can be published: no await in between
            sink.emit("stdout", f"y {i}")
            peak = max(peak, len(sink._lines))
        await sink.close()
        assert peak <= logsink.MAX_BUFFERED_LINES
        lines = await _stored_lines(js)
        assert lines[0] == "y 0"
        assert any("lines not logged: the step wrote faster than its log could be stored" in t for t in lines)
        await nc.close()

    asyncio.run(scenario())


def test_long_lines_are_stored_in_batches_that_fit(nats_url: str) -> None:
    async def scenario() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await bus.provision(js)
        sink = LogSink(js, _task())
        for i in range(300):
            sink.emit("stdout", f"{i:04d}" + "x" * 16_000)  # 300 lines of 16 KB: 4.8 MB
        await sink.close()
        lines = await _stored_lines(js)
        assert [t[:4] for t in lines] == [f"{i:04d}" for i in range(300)]
        await nc.close()

    asyncio.run(scenario())
