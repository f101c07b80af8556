"""How a run's state is kept in the ``wf_runs`` bucket: the live part under the run's key, the
finished parts under keys of their own.

Why not one document per run
----------------------------
Every event changes a run, and the scheduler writes the change back before it acts on it. With
the whole :class:`RunState` under one key, a run of N steps rewrote O(N) bytes per event and
O(N²) over its life (a 1000-step run moved ~800 KB through NATS per step, and a run could not
hold more than ~2,000 steps). Finished steps and instances hardly ever change again, so they
move out:

- ``<run>``: the *header*: the run, its jobs, and every step and matrix/fan-out instance that
  is still changing (plus the scheduler's outbox). An aggregate job lists its instances' ids;
- ``<run>.<instance>``: a finished matrix or fan-out instance (without its steps), or a live
  one when there are too many to keep in the header (a fan-out to a thousand agents);
- ``<run>.<job>.<index>``: a finished step, or a step of an instance stored that way.

A step never touched (pending, no attempt) is stored nowhere: it is rebuilt from the plan. What
the header holds wins over a key of its own (a retried step comes back into the header).

Why not a key per step, written in one atomic batch per event
-------------------------------------------------------------
That was measured first (``bench/results/throughput-atomic-every-event.json``): JetStream
syncs a file-backed stream to disk for every atomic batch, ~6.5 ms here against ~0.3 ms for a
plain KV update, which halved the steps per second. So an event is one revision-checked update
of the header, and finished parts move out in groups: once :data:`MOVE_OUT_AT` of them have
gathered, or the header passes :data:`MOVE_OUT_BYTES`, one atomic batch stores them and the
header without them (the header last, every message checking the revision it expects). The
cost of the disk sync is then shared by dozens of steps.

Several schedulers
------------------
Every write includes the header with its expected revision, so two writers of one run always
conflict on it and the loser re-reads and re-applies. A batch holds at most :data:`MAX_BATCH`
messages; a bigger move (a fan-out to thousands of agents finishing) is several batches, each
ending with the header as it was, so the parts it stores stay unread until the last batch.

Reads: the header, then every other key of the run with batched direct gets. A batch
committed between the two shows up as a key newer than the header (the header is the last
message of every batch); the read is then retried.
"""

from __future__ import annotations

import json
import secrets
import zlib
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from . import subjects
from .plan import Plan
from .state import TERMINAL, JobState, RunState, StepState

MAX_BATCH = 1000
"""nats-server's limit of messages in one atomic batch."""

DIRECT_BATCH = 1000
"""Messages asked for in one batched direct get."""

MOVE_OUT_AT = 32
"""Finished steps and instances the header gathers before they move out to keys of their own."""

MOVE_OUT_BYTES = 64 * 1024
"""A header bigger than this moves out every finished part at once, and if it is still bigger,
every matrix and fan-out instance (live ones come back in as they change)."""

CONFLICT_CODE = 10071
"""JetStream's error code for a wrong expected last sequence (someone else wrote the key)."""

_encoder = msgspec.json.Encoder()
_header_decoder = msgspec.json.Decoder(RunState)
_step_decoder = msgspec.json.Decoder(StepState)
_job_decoder = msgspec.json.Decoder(JobState)


class WriteConflict(Exception):
    """Another writer changed the run since it was read: re-read and re-apply."""


class StateTooLarge(Exception):
    """The header does not fit in one NATS message even with every finished part moved out."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the run's state is {size} bytes; NATS takes at most {limit} in one message")
        self.size = size
        self.limit = limit


@dataclass
class StoredRun:
    """A run's state as read or last written, with what is needed to write it back safely."""

    state: RunState
    revision: int
    """The header's KV revision."""
    records: dict[str, int] = field(default_factory=dict)
    """Key -> revision of every instance and step stored under its own key (what a write of
    that key must expect)."""
    parts: dict[str, StepState | JobState] = field(default_factory=dict)
    """Their values, decoded (copies, not the state's objects): comparing structs is much
    cheaper than encoding every step of the run on every event to compare bytes."""
    header: bytes = b""


def step_key(run_id: str, job_id: str, index: int) -> str:
    return f"{run_id}.{job_id}.{index}"


def instance_key(run_id: str, job_id: str) -> str:
    return f"{run_id}.{job_id}"


def untouched_steps(plan: Plan, job: JobState) -> list[StepState]:
    """The steps a job has before anything happened to them (none for a matrix or fan-out
    aggregate: its instances have the steps)."""
    plan_job = plan.jobs.get(job.job)
    if plan_job is None:
        return []
    if job.parent is None and plan_job.expands:
        return []
    return [StepState(index=s.index, name=s.name, id=s.id) for s in plan_job.steps]


@dataclass
class _Layout:
    """How a state is to be stored: the header, and the parts it may move out."""

    header: bytes
    movable: list[tuple[str, bytes]]
    """(key, value) of finished parts that differ from their own key (or have none)."""


KEEP_ALL, MOVE_FINISHED, MOVE_INSTANCES = 0, 1, 2
"""How much :func:`_layout` moves out of the header: nothing; finished steps and instances;
those and every matrix or fan-out instance with its steps, live or not."""


def _layout(state: RunState, parts: dict[str, StepState | JobState], move: int) -> _Layout:
    """The header for ``state`` given what ``parts`` already hold, leaving out what ``move``
    says (those parts then go into ``movable``; with KEEP_ALL, ``movable`` only counts the
    finished parts that could move)."""
    run_id = state.run_id
    jobs: dict[str, JobState] = {}
    movable: list[tuple[str, bytes]] = []
    for job in state.jobs.values():
        whole = move >= MOVE_INSTANCES and job.parent is not None
        live_steps = []
        for step in job.steps:
            key = step_key(run_id, job.id, step.index)
            stored = parts.get(key)
            if stored is None:
                if step == StepState(index=step.index, name=step.name, id=step.id):
                    continue  # untouched: rebuilt from the plan
            elif stored == step:
                continue  # already under its own key
            if whole or step.status in TERMINAL:
                movable.append((key, _encoder.encode(step)))
                if move >= MOVE_FINISHED:
                    continue
            live_steps.append(step)
        if job.parent is not None:
            key = instance_key(run_id, job.id)
            bare = msgspec.structs.replace(job, steps=[])
            if parts.get(key) != bare:
                if whole or (job.status in TERMINAL and not live_steps):
                    movable.append((key, _encoder.encode(bare)))
                    if move >= MOVE_FINISHED:
                        continue
            elif not live_steps:
                continue  # the instance and all its steps are under keys of their own
        jobs[job.id] = msgspec.structs.replace(job, steps=live_steps)
    header = _encoder.encode(msgspec.structs.replace(state, jobs=jobs))
    return _Layout(header=header, movable=movable)


def encode_header(state: RunState) -> bytes:
    """The header of a run nothing of which has moved out yet (as the API first stores it)."""
    return _layout(state, {}, KEEP_ALL).header


def _pack(header: bytes) -> bytes:
    """A header as stored: a big one (a wide fan-out's first event, whose outbox holds a task
    per agent) compressed, which such repetitive JSON shrinks by 10-20 times."""
    return zlib.compress(header, 1) if len(header) > MOVE_OUT_BYTES else header


def _unpack(value: bytes) -> bytes:
    return zlib.decompress(value) if value[:1] == b"\x78" else value  # JSON starts with '{'


def decode_header(data: bytes) -> RunState:
    return _header_decoder.decode(data)


class RunStore:
    """Reads and writes runs in ``wf_runs``; used by the scheduler (reads, writes) and the API
    (creates, reads)."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self._kv_prefix = f"$KV.{subjects.RUNS_BUCKET}."
        self._direct_get = f"$JS.API.DIRECT.GET.{subjects.RUNS_STREAM}"
        self._kv: KeyValue | None = None

    async def kv(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self.js.key_value(subjects.RUNS_BUCKET)
        return self._kv

    async def create(self, state: RunState) -> int:
        """Store a new run (all steps untouched, so only the header). Fails if it exists."""
        return await (await self.kv()).create(state.run_id, _pack(encode_header(state)))

    async def load(self, run_id: str, plan: Plan, attempts: int = 10) -> StoredRun | None:
        """The run's whole state (None: no such run)."""
        for _ in range(attempts):
            header = await self._get(run_id)
            if header is None:
                return None
            revision, data = header
            stored = await self._records(run_id)
            if all(rev < revision for rev, _ in stored.values()):
                state = _assemble(decode_header(data), plan, stored)
                return StoredRun(
                    state=state, revision=revision, records={key: rev for key, (rev, _) in stored.items()},
                    parts={key: _decode_part(key, value) for key, (_, value) in stored.items()}, header=data,
                )
        raise WriteConflict(f"run {run_id} changed during {attempts} reads in a row")

    async def revision(self, run_id: str) -> int | None:
        """The run's current header revision (None: no such run)."""
        header = await self._get(run_id)
        return None if header is None else header[0]

    async def load_header(self, run_id: str) -> RunState | None:
        """The run and its jobs, without steps (cheap: for listings)."""
        header = await self._get(run_id)
        return None if header is None else decode_header(header[1])

    async def run_ids(self) -> list[str]:
        """Every run id stored, newest first (run ids sort by creation time).

        One stream-info request per 100,000 runs: the server lists the subjects of the header
        keys (``<run>``, one token), so neither the step keys nor any value is read."""
        names: list[str] = []
        while True:
            request = {"subjects_filter": f"{self._kv_prefix}*", "offset": len(names)}
            reply = json.loads((await self.nc.request(
                f"$JS.API.STREAM.INFO.{subjects.RUNS_STREAM}", json.dumps(request).encode(), timeout=10.0,
            )).data)
            found = list((reply.get("state") or {}).get("subjects") or {})
            names.extend(subject[len(self._kv_prefix):] for subject in found)
            if not found or len(names) >= int(reply.get("total", 0)):
                break
        names.sort(reverse=True)
        return names

    async def save(self, stored: StoredRun, state: RunState) -> StoredRun:
        """Write ``state`` over ``stored``; raise :class:`WriteConflict` if another writer got
        there first, :class:`StateTooLarge` if it cannot be stored. Returns what is now stored:
        ``stored`` itself when nothing changed (an event applied again after a redelivery)."""
        layout = _layout(state, stored.parts, KEEP_ALL)
        if len(layout.movable) >= MOVE_OUT_AT or len(layout.header) > MOVE_OUT_BYTES:
            layout = _layout(state, stored.parts, MOVE_FINISHED)
            if len(layout.header) > MOVE_OUT_BYTES:  # a wide matrix or fan-out still running
                layout = _layout(state, stored.parts, MOVE_INSTANCES)
        else:
            layout.movable = []
        header = layout.header
        packed = _pack(header)
        limit = self.nc.max_payload - 4096
        if len(packed) > limit:
            raise StateTooLarge(len(packed), limit)
        if not layout.movable:
            if header == stored.header:
                return stored
            try:
                revision = await (await self.kv()).update(state.run_id, packed, last=stored.revision)
            except KeyWrongLastSequenceError as error:
                raise WriteConflict(str(error)) from error
            return StoredRun(state=state, revision=revision, records=stored.records, parts=stored.parts, header=header)
        records = dict(stored.records)
        parts = dict(stored.parts)
        revision = stored.revision
        moves = [(key, data, records.get(key, 0)) for key, data in layout.movable]
        for first in range(0, len(moves), MAX_BATCH - 1):
            last = first + MAX_BATCH - 1 >= len(moves)
            # A batch before the last rewrites the header as it was: the parts it stores stay
            # unread (the old header still holds them) until the last batch.
            chunk = [*moves[first:first + MAX_BATCH - 1], (state.run_id, packed if last else _pack(stored.header), revision)]
            revision = await self._write_batch(chunk)
            for i, (key, data, _) in enumerate(chunk[:-1]):
                records[key] = revision - len(chunk) + 1 + i
                parts[key] = _decode_part(key, data)
        return StoredRun(state=state, revision=revision, records=records, parts=parts, header=header)

    async def _write_batch(self, messages: list[tuple[str, bytes, int]]) -> int:
        """One atomic batch: every message with its expected revision; returns the last's sequence."""
        batch_id = secrets.token_hex(8)
        for number, (key, data, expected) in enumerate(messages, 1):
            headers = {
                "Nats-Batch-Id": batch_id,
                "Nats-Batch-Sequence": str(number),
                "Nats-Expected-Last-Subject-Sequence": str(expected),
            }
            subject = self._kv_prefix + key
            if number < len(messages):
                await self.nc.publish(subject, data, headers=headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            reply = json.loads((await self.nc.request(subject, data, headers=headers, timeout=5.0)).data)
            error = reply.get("error")
            if error is None:
                return int(reply["seq"])
            if error.get("err_code") == CONFLICT_CODE:
                raise WriteConflict(error.get("description", "wrong last sequence"))
            raise RuntimeError(f"storing run state failed: {error.get('description', error)}")
        raise AssertionError("empty batch")

    async def _get(self, key: str) -> tuple[int, bytes] | None:
        """A run's header: (revision, JSON), or None."""
        try:
            entry = await (await self.kv()).get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return entry.revision, _unpack(entry.value)

    async def _records(self, run_id: str) -> dict[str, tuple[int, bytes]]:
        """Every instance and step of the run under a key of its own: batched direct gets of
        the stream's messages on ``<run>.>`` in sequence order, a page at a time (the bucket
        keeps one message per key, so each is a key's current value)."""
        records: dict[str, tuple[int, bytes]] = {}
        cursor = 1
        while True:
            page = await self._direct_batch(f"{self._kv_prefix}{run_id}.>", cursor)
            for key, revision, data in page:
                if data is None:
                    records.pop(key, None)
                else:
                    records[key] = (revision, data)
            if len(page) < DIRECT_BATCH:
                return records
            cursor = page[-1][1] + 1

    async def _direct_batch(self, subject_filter: str, start: int) -> list[tuple[str, int, bytes | None]]:
        """Up to DIRECT_BATCH messages matching the filter from sequence ``start`` on, as (key,
        sequence, value or None for a deleted key); the replies stream to an inbox."""
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        try:
            request = {"seq": start, "next_by_subj": subject_filter, "batch": DIRECT_BATCH}
            await self.nc.publish(self._direct_get, json.dumps(request).encode(), reply=inbox)
            found: list[tuple[str, int, bytes | None]] = []
            while True:
                msg = await sub.next_msg(timeout=5.0)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status is not None:
                    if status in ("204", "404"):  # end of batch / nothing (more) stored
                        return found
                    raise RuntimeError(f"reading {subject_filter} failed: {status} {headers.get('Description', '')}")
                key = headers["Nats-Subject"][len(self._kv_prefix):]
                deleted = headers.get("KV-Operation") in ("DEL", "PURGE")
                found.append((key, int(headers["Nats-Sequence"]), None if deleted else msg.data))
        finally:
            await sub.unsubscribe()


def _decode_part(key: str, value: bytes) -> StepState | JobState:
    """A stored part: ``<run>.<instance>`` is a job, ``<run>.<job>.<index>`` a step."""
    return _job_decoder.decode(value) if key.count(".") == 1 else _step_decoder.decode(value)


def _assemble(header: RunState, plan: Plan, stored: dict[str, tuple[int, bytes]]) -> RunState:
    """The whole state from the header and the parts stored under their own keys: the plan's
    jobs in the header's order, then each aggregate's instances in its order; each job's steps
    rebuilt from the plan, then its stored steps, then the header's (which win)."""
    run_id = header.run_id
    live = header.jobs
    jobs: dict[str, JobState] = {job_id: job for job_id, job in live.items() if job.parent is None}
    for aggregate in [job for job in jobs.values() if job.instances]:
        for instance_id in aggregate.instances:
            instance = live.get(instance_id)
            if instance is None:
                found = stored.get(instance_key(run_id, instance_id))
                if found is None:
                    raise RuntimeError(f"run {run_id}: instance {instance_id} is listed but not stored")
                instance = _job_decoder.decode(found[1])
            jobs[instance_id] = instance
    for job_id, job in live.items():
        jobs.setdefault(job_id, job)
    for job in jobs.values():
        steps = untouched_steps(plan, job)
        for i, step in enumerate(steps):
            found = stored.get(step_key(run_id, job.id, step.index))
            if found is not None:
                steps[i] = _step_decoder.decode(found[1])
        for step in job.steps:  # the header's live steps
            if 0 <= step.index < len(steps):
                steps[step.index] = step
        job.steps = steps
    header.jobs = jobs
    return header
