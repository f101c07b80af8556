"""Server group definitions made through the API, kept in the KV bucket ``wf_groups``.

Key = group name, value = a JSON :class:`~waterflow_common.groups.GroupDefinition` (the same
shape as one entry of server-groups.yml). :class:`StoredGroupProvider` puts them on top of the
configured provider (the server-groups.yml file or a plugin), and every reader of groups (the
scheduler's :class:`~waterflow_common.groups.Fleet`, the API's listings) asks it.

Precedence — one name, one definition:

- the **file wins**. The API refuses (409) to create, change or delete a group the configured
  provider defines: edit the file instead. Should the file gain a name that the API defined
  before, the file's definition is used, and ``GET /v1/groups/{name}`` reports the stored one as
  ``shadowed`` (it comes back if the file drops the name);
- an agent that declares a group itself (``waterflow agent --group web``) is always a member;
  a definition only adds members (by name, by labels, by including other groups).

Writes are revision-checked (compare-and-set, retried on a conflict), so two people editing the
same group at once never lose each other's change. The scheduler follows the bucket with a KV
watch (:meth:`StoredGroupProvider.follow`), so a change applies to the next dispatch without a
restart; the API reads the bucket at each request (:meth:`StoredGroupProvider.refresh`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence

import msgspec
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from nats.js.errors import KeyWrongLastSequenceError

from . import subjects
from .agents import KV_OPERATION_HEADER, AgentInfo, kv_stream, labels_match
from .errors import UserError
from .groups import GroupDefinition, ServerGroupProvider, _find_cycle
from .limits import MAX_DESCRIPTION_LENGTH, MAX_GROUP_DEFINITION_BYTES, MAX_NAME_LENGTH
from .log import get_logger
from .streams import read_stored

__all__ = [
    "GroupConflict",
    "GroupNotFound",
    "InvalidGroup",
    "StoredGroupProvider",
    "check_definition",
    "membership_reasons",
]

log = get_logger("waterflow.groups")

MAX_CAS_RETRIES = 20
"""Attempts of one revision-checked edit before giving up (each loses only to another edit)."""
WATCH_RENEW_SECONDS = 60.0
"""A scheduler's watch of ``wf_groups`` is started afresh this often: a watch that died without
an error (a subscription lost in a reconnect) then costs at most this much staleness."""


class InvalidGroup(UserError):
    """A definition that cannot be stored: a bad name, an include cycle, a wrong field."""


class GroupNotFound(UserError):
    """No stored definition of that name."""


class GroupConflict(UserError):
    """The change is not possible as asked (the file defines the group, the member is one by
    its own declaration or labels, too many concurrent edits)."""


_decoder = msgspec.json.Decoder(GroupDefinition)


def check_definition(definition: GroupDefinition) -> GroupDefinition:
    """``definition`` if every name in it is valid, else InvalidGroup naming each problem."""
    problems: list[str] = []
    for what, values in (("group name", [definition.name]), ("included group", definition.include)):
        for value in values:
            try:
                subjects.check_group(value, what)
            except ValueError as error:
                problems.append(str(error))
    for agent in definition.agents:
        try:
            subjects.check_token(agent, "agent name")
        except ValueError as error:
            problems.append(str(error))
    for key in definition.labels:
        if not key or "=" in key or len(key) > MAX_NAME_LENGTH:
            problems.append(f"label key {key[:40]!r} must be 1 to {MAX_NAME_LENGTH} characters without '='")
    if definition.name in definition.include:
        problems.append(f"group {definition.name!r} includes itself")
    if len(definition.description) > MAX_DESCRIPTION_LENGTH:
        problems.append(f"description: {len(definition.description)} characters, over the limit of {MAX_DESCRIPTION_LENGTH}")
    size = len(msgspec.json.encode(definition))
    if size > MAX_GROUP_DEFINITION_BYTES:
        problems.append(f"the definition is {size} bytes encoded, over the limit of {MAX_GROUP_DEFINITION_BYTES}: "
                        "select agents by labels instead of naming thousands")
    if problems:
        raise InvalidGroup("; ".join(problems))
    return definition


def membership_reasons(name: str, agent: AgentInfo | None, definitions: dict[str, GroupDefinition]) -> list[str]:
    """Why ``agent`` is a member of group ``name`` other than being listed by name (empty: none)."""
    if agent is None:
        return []
    reasons: list[str] = []
    if name in agent.groups:
        reasons.append(f"agent {agent.name!r} declares group {name!r} itself (waterflow agent --group {name})")
    definition = definitions.get(name)
    if definition is not None and definition.labels:
        required = [f"{k}={v}" if v else k for k, v in definition.labels.items()]
        if labels_match(agent.labels, required):
            reasons.append(f"its labels match the group's selector {', '.join(required)}")
    if definition is not None:
        for included in definition.include:
            if _DefinedProvider(definitions).members(included, [agent]):
                reasons.append(f"it is a member of included group {included!r}")
    return reasons


class _DefinedProvider(ServerGroupProvider):
    """Fixed definitions (membership questions over a snapshot)."""

    def __init__(self, definitions: dict[str, GroupDefinition]) -> None:
        self._definitions = definitions

    def definitions(self) -> dict[str, GroupDefinition]:
        return self._definitions


class StoredGroupProvider(ServerGroupProvider):
    """The configured provider's definitions plus those stored in ``wf_groups`` (file wins).

    ``definitions()`` stays synchronous (the scheduler's state machine calls it): it answers from
    the last read of the bucket, brought up to date by :meth:`refresh` or :meth:`follow`.
    """

    def __init__(self, base: ServerGroupProvider | None = None) -> None:
        self.base = base or ServerGroupProvider()
        self.stored: dict[str, GroupDefinition] = {}
        """Definitions in ``wf_groups`` as last read, by name."""
        self.revisions: dict[str, int] = {}

    @property  # type: ignore[override]
    def error(self) -> str | None:
        return self.base.error

    @property  # type: ignore[override]
    def source(self) -> str:
        if type(self.base) is ServerGroupProvider:
            return f"the API (KV {subjects.GROUPS_BUCKET})"
        return f"{self.base.source} and the API (KV {subjects.GROUPS_BUCKET})"

    def file_definitions(self) -> dict[str, GroupDefinition]:
        """What the configured provider (server-groups.yml, a plugin) defines."""
        return self.base.definitions()

    def definitions(self) -> dict[str, GroupDefinition]:
        return {**self.stored, **self.base.definitions()}

    def origin(self, name: str) -> str | None:
        """``file`` (the configured provider), ``api`` (stored) or None (not defined)."""
        if name in self.base.definitions():
            return "file"
        return "api" if name in self.stored else None

    def shadowed(self, name: str) -> GroupDefinition | None:
        """A stored definition the configured provider's one of the same name hides."""
        return self.stored.get(name) if name in self.base.definitions() else None

    def group_names(self, agents: Iterable[AgentInfo]) -> list[str]:
        agents = list(agents)
        return sorted(set(self.base.group_names(agents)) | set(self.stored))

    def members(self, group: str, agents: Sequence[AgentInfo]) -> list[AgentInfo]:
        wanted = self._member_names(group, agents, self.definitions(), set())
        if type(self.base).members is not ServerGroupProvider.members:  # a plugin decides itself
            wanted |= {a.name for a in self.base.members(group, agents)}
        return [agent for agent in agents if agent.name in wanted]

    # --- reading the bucket --------------------------------------------------------------------
    async def refresh(self, js: JetStreamContext) -> None:
        """Read every stored definition now (one ephemeral consumer; the API calls it per request)."""
        messages = await read_stored(js, kv_stream(subjects.GROUPS_BUCKET),
                                     subjects.kv_key_subject(subjects.GROUPS_BUCKET, ">"))
        stored: dict[str, GroupDefinition] = {}
        revisions: dict[str, int] = {}
        for msg in messages:
            key = msg.subject.split(".", 2)[2]
            if msg.headers and msg.headers.get(KV_OPERATION_HEADER) in ("DEL", "PURGE"):
                stored.pop(key, None)
                revisions.pop(key, None)
                continue
            definition = self._decode(key, msg.data)
            if definition is not None:
                stored[key] = definition
                revisions[key] = msg.metadata.sequence.stream
        self.stored, self.revisions = stored, revisions

    async def follow(self, js: JetStreamContext, on_change: Callable[[], Awaitable[None] | None] | None = None) -> None:
        """Keep :attr:`stored` current by watching the bucket, until cancelled (a task).

        The watch delivers every current definition first, then each change as it is written;
        if the watch fails (NATS went away), it is started again, which re-reads everything, and
        so it is every WATCH_RENEW_SECONDS (the definitions in force stay until the new watch has
        delivered them all). ``on_change`` is called after each change (the scheduler drops its
        cached fleet).
        """
        while True:
            try:
                kv = await js.key_value(subjects.GROUPS_BUCKET)
                watcher = await kv.watchall()
                try:
                    async with asyncio.timeout(WATCH_RENEW_SECONDS):
                        await self._apply_watch(watcher, on_change)
                finally:
                    await watcher.stop()
            except TimeoutError:
                continue  # time to renew the watch
            except asyncio.CancelledError:
                raise
            except Exception as error:  # NATS away, bucket being provisioned: watch again
                log.warning("groups.watch_failed", error=str(error) or type(error).__name__)
            await asyncio.sleep(1.0)

    async def _apply_watch(self, watcher: KeyValue.KeyWatcher,
                           on_change: Callable[[], Awaitable[None] | None] | None) -> None:
        """Collect the watch's initial definitions, swap them in at once, then apply each change."""
        fresh: dict[str, GroupDefinition] = {}
        revisions: dict[str, int] = {}
        initial = True
        async for entry in watcher:
            if entry is not None:
                target, target_revisions = (fresh, revisions) if initial else (self.stored, self.revisions)
                definition = None
                if entry.operation not in ("DEL", "PURGE") and entry.value is not None:
                    definition = self._decode(entry.key, entry.value)
                if definition is None:
                    target.pop(entry.key, None)
                    target_revisions.pop(entry.key, None)
                else:
                    target[entry.key] = definition
                    target_revisions[entry.key] = entry.revision
            if entry is None or not initial:
                if initial:
                    self.stored, self.revisions, initial = fresh, revisions, False
                    log.debug("groups.stored_loaded", groups=len(self.stored))
                if on_change is not None:
                    result = on_change()
                    if result is not None:
                        await result

    @staticmethod
    def _decode(key: str, data: bytes) -> GroupDefinition | None:
        try:
            definition = _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            log.warning("groups.stored_invalid", group=key, error=str(error))
            return None
        return definition if definition.name == key else msgspec.structs.replace(definition, name=key)

    # --- writing the bucket (the API) ----------------------------------------------------------
    def _check_editable(self, name: str) -> None:
        if name in self.base.definitions():
            raise GroupConflict(f"group {name!r} is defined in {self.base.source}: edit that file to change it")

    def _check_cycle(self, definition: GroupDefinition) -> None:
        definitions = {**self.definitions(), definition.name: definition}
        cycle = _find_cycle(definition.name, definitions, [])
        if cycle:
            raise InvalidGroup(f"group {definition.name!r} would include itself through {' -> '.join(cycle)}")

    async def put(self, js: JetStreamContext, definition: GroupDefinition) -> bool:
        """Create or replace a stored definition; True if it was created."""
        check_definition(definition)
        existed: list[bool] = []

        def replace(current: GroupDefinition | None) -> GroupDefinition:
            existed.append(current is not None)
            return definition

        await self.edit(js, definition.name, replace)
        return not existed[-1]

    async def delete(self, js: JetStreamContext, name: str) -> GroupDefinition:
        """Delete a stored definition; returns what it was."""
        await self.refresh(js)
        self._check_editable(name)
        kv = await js.key_value(subjects.GROUPS_BUCKET)
        for _ in range(MAX_CAS_RETRIES):
            definition, revision = self.stored.get(name), self.revisions.get(name)
            if definition is None or revision is None:
                raise GroupNotFound(f"no group {name!r} is defined through the API")
            try:
                await kv.delete(name, last=revision)
                await self.refresh(js)
                return definition
            except KeyWrongLastSequenceError:
                await self.refresh(js)
        raise GroupConflict(f"group {name!r} is being changed by others: too many concurrent edits, try again")

    async def edit(
        self, js: JetStreamContext, name: str, change: Callable[[GroupDefinition | None], GroupDefinition | None],
    ) -> tuple[GroupDefinition, bool]:
        """Apply ``change`` to the stored definition (None: there is none) with a revision check,
        again on a conflict. ``change`` returns the new definition, or None for "nothing to do".
        Returns the definition now stored and whether it changed."""
        subjects.check_group(name, "group name")
        kv = await js.key_value(subjects.GROUPS_BUCKET)
        for _ in range(MAX_CAS_RETRIES):
            await self.refresh(js)
            self._check_editable(name)
            current, revision = self.stored.get(name), self.revisions.get(name)
            updated = change(current)
            if updated is None:
                assert current is not None
                return current, False
            check_definition(updated)
            self._check_cycle(updated)
            try:
                if revision is None:
                    await kv.create(name, msgspec.json.encode(updated))
                else:
                    await kv.update(name, msgspec.json.encode(updated), last=revision)
                await self.refresh(js)
                return updated, True
            except KeyWrongLastSequenceError:
                continue
        raise GroupConflict(f"group {name!r} is being changed by others: too many concurrent edits, try again")

