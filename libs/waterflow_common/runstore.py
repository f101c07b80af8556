"""How a run's state is kept in the ``wf_runs`` bucket: one key for the run, one per step.

Why not one document per run
----------------------------
Every event changes a run, and the scheduler writes the change back before it acts on it. With
the whole :class:`RunState` under one key, a run of N steps rewrote O(N) bytes per event and
O(N²) over its life (a 1000-step run moved ~800 KB through NATS per step). So the state is split:

- ``<run>``: the *header*, the run and its jobs without their steps (and the scheduler's outbox);
- ``<run>.<job>.<index>``: one step of one job, written only once it has left its initial state.
  A step that was never touched (pending, no attempt) is not stored: it is rebuilt from the plan.

An event therefore writes the header plus the few steps it changed.

How a write stays atomic and safe with several schedulers
---------------------------------------------------------
The keys of one change are written as one JetStream *atomic batch* (nats-server ≥ 2.12, stream
option ``allow_atomic``): all or nothing, each message carrying the revision it expects
(``Nats-Expected-Last-Subject-Sequence``), the header last. The header is in every batch, so two
writers of the same run always conflict on it, and the one that loses re-reads and re-applies.
A batch holds at most :data:`MAX_BATCH` messages; the rare change of more steps than that (a
cancel of a run with thousands of pending steps) is written as several batches, each ending with
the header, and is not atomic as a whole: a writer killed between two of them leaves some of the
steps changed (each batch is still consistent, and the event is applied again on redelivery).

Reads: the header first, then every step key with one direct-get ``multi_last`` request. A batch
committed between the two reads shows up as a step newer than the header (the header is the
last message of every batch, so it has the highest revision of its batch); the read is retried.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from . import subjects
from .plan import Plan
from .state import JobState, RunState, StepState

MAX_BATCH = 1000
"""nats-server's limit of messages in one atomic batch."""

CONFLICT_CODE = 10071
"""JetStream's error code for a wrong expected last sequence (someone else wrote the key)."""

_encoder = msgspec.json.Encoder()
_header_decoder = msgspec.json.Decoder(RunState)
_step_decoder = msgspec.json.Decoder(StepState)


class _TooManyResults(Exception):
    """A direct get asked for more subjects than the server answers at once (1024)."""


class WriteConflict(Exception):
    """Another writer changed the run since it was read: re-read and re-apply."""


@dataclass
class StoredRun:
    """A run's state as read or last written, with what is needed to write it back safely."""

    state: RunState
    revision: int
    """The header's KV revision."""
    steps: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    """Step key -> (revision, encoded step) of every stored step."""
    header: bytes = b""


def step_key(run_id: str, job_id: str, index: int) -> str:
    return f"{run_id}.{job_id}.{index}"


def untouched_steps(plan: Plan, job: JobState) -> list[StepState]:
    """The steps a job has before anything happened to them (none for a matrix or fan-out
    aggregate: its instances have the steps)."""
    plan_job = plan.jobs.get(job.job)
    if plan_job is None:
        return []
    if job.parent is None and (plan_job.matrix or plan_job.matrix_expression or plan_job.each):
        return []
    return [StepState(index=s.index, name=s.name, id=s.id) for s in plan_job.steps]


def encode_header(state: RunState) -> bytes:
    """The run without its steps (a shallow copy per job; the state itself is not changed)."""
    jobs = {job_id: msgspec.structs.replace(job, steps=[]) for job_id, job in state.jobs.items()}
    return _encoder.encode(msgspec.structs.replace(state, jobs=jobs))


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
        return await (await self.kv()).create(state.run_id, encode_header(state))

    async def load(self, run_id: str, plan: Plan, attempts: int = 10) -> StoredRun | None:
        """The run's whole state (None: no such run)."""
        for _ in range(attempts):
            header = await self._get(run_id)
            if header is None:
                return None
            revision, data = header
            steps = await self._steps(run_id)
            if all(rev < revision for rev, _ in steps.values()):
                return StoredRun(state=_assemble(decode_header(data), plan, steps), revision=revision, steps=steps, header=data)
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
        """Write what changed from ``stored`` to ``state``; raise :class:`WriteConflict` if
        another writer got there first. Returns what is now stored: ``stored`` itself when
        nothing changed (an event applied again after a redelivery), and nothing is written."""
        run_id = state.run_id
        header = encode_header(state)
        steps = dict(stored.steps)
        changed: list[tuple[str, bytes, int]] = []
        for job in state.jobs.values():
            for step in job.steps:
                key = step_key(run_id, job.id, step.index)
                data = _encoder.encode(step)
                previous = steps.get(key)
                if previous is None:
                    if step == StepState(index=step.index, name=step.name, id=step.id):
                        continue
                    changed.append((key, data, 0))
                elif previous[1] != data:
                    changed.append((key, data, previous[0]))
        if header == stored.header and not changed:
            return stored
        revision = stored.revision
        first = 0
        while True:
            chunk = [*changed[first:first + MAX_BATCH - 1], (run_id, header, revision)]
            revision = await self._write_batch(chunk)
            for i, (key, data, _) in enumerate(chunk[:-1]):
                steps[key] = (revision - len(chunk) + 1 + i, data)
            first += MAX_BATCH - 1
            if first >= len(changed):
                return StoredRun(state=state, revision=revision, steps=steps, header=header)

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
        try:
            entry = await (await self.kv()).get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return entry.revision, entry.value

    async def _steps(self, run_id: str) -> dict[str, tuple[int, bytes]]:
        """Every stored step of a run, in one direct-get request (replies stream to an inbox);
        past the server's limit of subjects per request, with a watch (an ordered consumer)."""
        try:
            return await self._steps_direct(run_id)
        except _TooManyResults:
            pass
        watcher = await (await self.kv()).watch(f"{run_id}.>", ignore_deletes=True)
        steps: dict[str, tuple[int, bytes]] = {}
        try:
            async for entry in watcher:
                if entry is None:  # everything stored when the watch began has been delivered
                    break
                if entry.value is not None:
                    steps[entry.key] = (entry.revision, entry.value)
        finally:
            await watcher.stop()
        return steps

    async def _steps_direct(self, run_id: str) -> dict[str, tuple[int, bytes]]:
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        try:
            request = json.dumps({"multi_last": [f"{self._kv_prefix}{run_id}.>"]}).encode()
            await self.nc.publish(self._direct_get, request, reply=inbox)
            steps: dict[str, tuple[int, bytes]] = {}
            while True:
                msg = await sub.next_msg(timeout=5.0)
                headers = msg.headers or {}
                status = headers.get("Status")
                if status is not None:
                    if status in ("204", "404"):  # end of batch / nothing stored
                        return steps
                    if status == "413":
                        raise _TooManyResults
                    raise RuntimeError(f"reading run {run_id} failed: {status} {headers.get('Description', '')}")
                if headers.get("KV-Operation") in ("DEL", "PURGE"):
                    continue
                key = headers["Nats-Subject"][len(self._kv_prefix):]
                steps[key] = (int(headers["Nats-Sequence"]), msg.data)
        finally:
            await sub.unsubscribe()


def _assemble(state: RunState, plan: Plan, stored: dict[str, tuple[int, bytes]]) -> RunState:
    """Put the steps back into the header's jobs: stored ones as stored, others untouched."""
    for job in state.jobs.values():
        steps = untouched_steps(plan, job)
        for i, step in enumerate(steps):
            found = stored.get(step_key(state.run_id, job.id, step.index))
            if found is not None:
                steps[i] = _step_decoder.decode(found[1])
        job.steps = steps
    return state
