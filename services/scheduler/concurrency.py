"""Concurrency groups: at most one run of a group at a time, the others queued in order.

``concurrency: {group: deploy-${{ inputs.env }}, cancel-in-progress: true}`` in a workflow. The
group's slot is a KV entry (``wf_concurrency``) holding the running run and the queue behind it,
changed only with revision checks so several schedulers agree. Both operations are idempotent:
a scheduler that crashes between changing the slot and telling the next run simply does it again
when the event is redelivered, and JetStream drops the duplicate wake-up.
"""

from __future__ import annotations

import base64

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue


class ConcurrencySlot(msgspec.Struct, kw_only=True):
    holder: str | None = None
    queue: list[str] = []


_decoder = msgspec.json.Decoder(ConcurrencySlot)


def slot_key(group: str) -> str:
    """KV keys allow few characters; a group name may contain any."""
    return base64.urlsafe_b64encode(group.encode()).decode().rstrip("=") or "_"


class ConcurrencyGroups:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def _change(self, group: str, change: "callable[[ConcurrencySlot], None]") -> ConcurrencySlot:  # type: ignore[valid-type]
        key = slot_key(group)
        while True:
            try:
                entry = await self.kv.get(key)
                slot, revision = _decoder.decode(entry.value or b"{}"), entry.revision
            except KeyNotFoundError:
                slot, revision = ConcurrencySlot(), None
            change(slot)
            data = msgspec.json.encode(slot)
            try:
                if revision is None:
                    await self.kv.create(key, data)
                else:
                    await self.kv.update(key, data, last=revision)
                return slot
            except KeyWrongLastSequenceError:
                continue
            except Exception as error:  # create() on a key another scheduler just made
                if "wrong last sequence" in str(error).lower() or "key exists" in str(error).lower():
                    continue
                raise

    async def acquire(self, group: str, run_id: str) -> str | None:
        """Take the group for ``run_id``, or queue it; return the holder it waits for (None: go)."""

        def take(slot: ConcurrencySlot) -> None:
            if slot.holder is None:
                slot.holder = run_id
            elif slot.holder != run_id and run_id not in slot.queue:
                slot.queue.append(run_id)

        slot = await self._change(group, take)
        return None if slot.holder == run_id else slot.holder

    async def release(self, group: str, run_id: str) -> str | None:
        """Give the group up (or leave its queue); return the run that holds it now, if any."""

        def give_up(slot: ConcurrencySlot) -> None:
            if run_id in slot.queue:
                slot.queue.remove(run_id)
            if slot.holder == run_id:
                slot.holder = slot.queue.pop(0) if slot.queue else None

        slot = await self._change(group, give_up)
        return slot.holder
