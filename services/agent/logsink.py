"""Live step output to the log stream, batched.

One message per line would cost a JetStream round trip per line; one per step would not be live.
Lines are gathered for at most FLUSH_INTERVAL seconds or MAX_BATCH lines, whichever comes first.
"""

from __future__ import annotations

import asyncio
import time

from nats.js import JetStreamContext

from waterflow_common import subjects
from waterflow_common.log import get_logger
from waterflow_common.messages import LogBatch, LogLine, StepTask, encode
from waterflow_common.secrets import Masker
from waterflow_common.signing import sign_log_batch

log = get_logger("waterflow.agent.logs")

FLUSH_INTERVAL = 0.1
MAX_BATCH = 256
MAX_BATCH_CHARS = 256 * 1024
"""Characters of one batch (a message must stay under NATS's max_payload, 1 MB by default)."""
MAX_BUFFERED_LINES = 20_000
"""Lines waiting to be published; more are dropped (and counted) until the log catches up."""
MAX_LOG_BYTES = 64 * 1024 * 1024
"""Characters of one step attempt's log; the rest is dropped, with one line saying so."""


class LogSink:
    def __init__(self, js: JetStreamContext, task: StepTask) -> None:
        self._js = js
        self._task = task
        self.masker = Masker(task.mask)
        """Masks every line; the step's ``::add-mask::`` values are added to it as they come."""
        self._subject = subjects.step_logs(task.run_id, task.job_id, task.step.index)
        self._lines: list[LogLine] = []
        self._bytes = 0
        self._dropped = 0
        self._seq = 0
        self._wakeup = asyncio.Event()
        self._closed = False
        self._flusher = asyncio.create_task(self._run())

    def emit(self, stream: str, text: str) -> None:
        if len(self._lines) >= MAX_BUFFERED_LINES or self._bytes >= MAX_LOG_BYTES:
            # A step that writes faster than its log can be stored (``yes``), or far too much:
            # drop lines, say how many, and keep the agent's memory bounded.
            self._dropped += 1
            return
        text = self.masker(text)
        self._bytes += len(text)
        self._lines.append(LogLine(time.time(), stream, text))  # type: ignore[arg-type]
        if len(self._lines) >= MAX_BATCH:
            self._wakeup.set()

    async def close(self) -> None:
        """Publish everything emitted so far; after this returns the lines are in the stream."""
        self._closed = True
        self._wakeup.set()
        await self._flusher

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wakeup.wait(), FLUSH_INTERVAL)
            except asyncio.TimeoutError:
                pass
            self._wakeup.clear()
            await self._flush()
            if self._closed:
                await self._flush()
                return

    async def _flush(self) -> None:
        pending, self._lines = self._lines, []
        if self._dropped:
            why = "the step wrote faster than its log could be stored" if self._bytes < MAX_LOG_BYTES else (
                f"the step's log reached {MAX_LOG_BYTES // (1024 * 1024)} MiB")
            pending.append(LogLine(time.time(), "system", f"[{self._dropped} lines not logged: {why}]"))
            self._dropped = 0
        for lines in _batches(pending):
            batch = sign_log_batch(self._task.token, LogBatch(
                run_id=self._task.run_id, job_id=self._task.job_id, step_index=self._task.step.index,
                attempt=self._task.attempt, seq=self._seq, lines=lines, task=self._task.task,
            ))
            msg_id = batch.msg_id()
            self._seq += 1
            for delay in (0.1, 0.5, 1, 2, 5, None):
                try:
                    await self._js.publish(self._subject, encode(batch), headers={subjects.MSG_ID_HEADER: msg_id})
                    break
                except Exception as error:
                    if delay is None:
                        log.error("logs.dropped", subject=self._subject, lines=len(lines), error=str(error))
                        break
                    await asyncio.sleep(delay)


def _batches(lines: list[LogLine]) -> list[list[LogLine]]:
    """``lines`` cut into batches of at most MAX_BATCH lines and MAX_BATCH_CHARS characters, so
    that each fits in one NATS message (long lines are up to 16 KiB each)."""
    batches: list[list[LogLine]] = []
    current: list[LogLine] = []
    size = 0
    for line in lines:
        if current and (len(current) >= MAX_BATCH or size + len(line.text) > MAX_BATCH_CHARS):
            batches.append(current)
            current, size = [], 0
        current.append(line)
        size += len(line.text)
    if current:
        batches.append(current)
    return batches
