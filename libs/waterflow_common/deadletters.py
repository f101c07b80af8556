"""Moving a message aside: the dead-letter stream ``WF_DEAD_LETTERS``.

A consumer that cannot apply a message (it cannot be decoded, its proof does not check out, its
run does not exist, or it failed :data:`POISON_AFTER` deliveries) must neither retry it forever
(one poison message used to keep a consumer busy and its log growing) nor drop it silently. It
publishes a :class:`~waterflow_common.messages.DeadLetter` — the original subject, the payload cut
at ``limits.DEAD_LETTER_PAYLOAD_BYTES``, the reason, who moved it, the run, how often it was
delivered, when — and only then terminates the message. If that publish fails (NATS away), the
message is not terminated: it comes back and is moved aside then.

Who moves what aside: the scheduler (events) and the API's trigger consumer (fires). The
compiler answers every request, a malformed one with a diagnostic, so it has nothing to put
aside. Agents cannot publish here (their NATS permissions stop them, see ``auth.py``): a dead
letter must not be something an agent credential can plant, and a task carries secret values.

Operators read dead letters with ``GET /v1/dead-letters`` and ``waterflow dead-letters``.
"""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from . import subjects
from .limits import DEAD_LETTER_PAYLOAD_BYTES
from .log import get_logger
from .messages import DeadLetter, encode

__all__ = ["POISON_AFTER", "dead_letter_of", "get", "move_aside", "page", "retry_delay"]

log = get_logger("waterflow.deadletters")
_decoder = msgspec.json.Decoder(DeadLetter)

POISON_AFTER = 5
"""Deliveries of a message that fails every time after which it is moved aside (and, for an
event, its run is ended failed): NATS being away a while is retried, a message that cannot
work is not retried forever."""


def retry_delay(delivered: int) -> float:
    """Seconds before a failed message comes again: 2, 4, 8, 16, then at most 30."""
    return min(2.0 ** delivered, 30.0)


def dead_letter_of(msg: Msg, reason: str, consumer: str, run_id: str | None = None) -> DeadLetter:
    """The dead letter of JetStream message ``msg`` (the payload cut, with a marker, if long)."""
    data = msg.data or b""
    payload = data[:DEAD_LETTER_PAYLOAD_BYTES].decode("utf-8", errors="replace")
    truncated = len(data) > DEAD_LETTER_PAYLOAD_BYTES
    if truncated:
        payload += f"…[{len(data) - DEAD_LETTER_PAYLOAD_BYTES} more bytes cut]"
    delivered, seq = 1, None
    try:
        delivered = msg.metadata.num_delivered or 1
        seq = msg.metadata.sequence.stream
    except Exception:  # not a JetStream message (no reply subject with metadata)
        pass
    return DeadLetter(
        subject=msg.subject, payload=payload, payload_bytes=len(data), truncated=truncated, reason=reason[:4000],
        consumer=consumer, run_id=run_id, delivered=delivered, stream_seq=seq,
    )


async def move_aside(js: JetStreamContext, msg: Msg, reason: str, consumer: str, run_id: str | None = None) -> int:
    """Store ``msg``'s dead letter, then terminate ``msg``; returns the dead letter's sequence.

    Raises if the dead letter could not be stored (``msg`` is then left to be redelivered).
    Moving the same delivery aside twice stores one dead letter (same ``Nats-Msg-Id``)."""
    letter = dead_letter_of(msg, reason, consumer, run_id)
    msg_id = f"{consumer}:{msg.subject}:{letter.stream_seq}"
    ack = await js.publish(subjects.dead_letter(consumer, run_id), encode(letter), headers={subjects.MSG_ID_HEADER: msg_id})
    log.warning("message.moved_aside", consumer=consumer, subject=msg.subject, run_id=run_id, dead_letter=ack.seq,
                delivered=letter.delivered, reason=letter.reason)
    try:
        await msg.term()
    except Exception as error:  # redelivered later and moved aside again: the same dead letter
        log.warning("message.term_failed", subject=msg.subject, error=str(error) or type(error).__name__)
    return ack.seq


async def get(js: JetStreamContext, seq: int) -> DeadLetter | None:
    """The dead letter with sequence ``seq`` (None: there is none, or it aged out)."""
    try:
        raw = await js.get_msg(subjects.DEAD_LETTERS_STREAM, seq)
    except NotFoundError:
        return None
    try:
        return _decoder.decode(raw.data or b"")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


async def page(
    js: JetStreamContext, limit: int, before: int | None = None, run_id: str | None = None,
) -> tuple[list[tuple[int, DeadLetter]], int | None]:
    """Up to ``limit`` dead letters, newest first, with sequence below ``before``; and the
    cursor of the next page (None: this is the last). ``run_id``: only that run's."""
    if run_id is not None:
        from .streams import read_stored

        msgs = await read_stored(js, subjects.DEAD_LETTERS_STREAM, subjects.run_dead_letters(run_id))
        found = [(m.metadata.sequence.stream, _decoder.decode(m.data)) for m in reversed(msgs)]
        found = [(seq, letter) for seq, letter in found if before is None or seq < before]
        return found[:limit], (found[limit - 1][0] if len(found) > limit else None)
    state = (await js.stream_info(subjects.DEAD_LETTERS_STREAM)).state
    if state.messages == 0:
        return [], None
    last = state.last_seq if before is None else min(state.last_seq, before - 1)
    first = max(state.first_seq, last - limit + 1)
    if last < state.first_seq:
        return [], None
    letters = await asyncio.gather(*(get(js, seq) for seq in range(last, first - 1, -1)))
    found = [(seq, letter) for seq, letter in zip(range(last, first - 1, -1), letters) if letter is not None]
    return found, (first if first > state.first_seq else None)
