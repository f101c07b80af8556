"""Server groups: which agents belong to a group named in ``runs-on``.

A group exists as soon as one agent declares it (``waterflow agent --group web``). On top of
that a :class:`ServerGroupProvider` may *define* groups; an agent is a member of a group if any
of these holds:

- it declares the group itself;
- the definition lists it by name (``agents: [web-1, web-2]``);
- its labels match the definition's selector (``labels: {role: web, env: prod}``: all of them);
- it is a member of a group the definition includes (``include: [web, db]``), recursively.

The default :class:`FileGroupProvider` reads ``server-groups.yml``::

    groups:
      web:
        description: front-end servers
        labels: {role: web}
      db:
        agents: [db-1, db-2]
      prod:
        include: [web, db]

and re-reads it when its modification time changes, so editing the file takes effect without a
restart. A broken edit is reported (``error``) and the last good definitions stay in force.

To take groups from a CMDB, subclass :class:`ServerGroupProvider` and override
:meth:`~ServerGroupProvider.definitions` (or :meth:`~ServerGroupProvider.members` for full
control), then point ``WATERFLOW_SERVER_GROUPS`` at ``python:my_package.module:MyProvider``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec
import yaml

from . import subjects
from .agents import AgentInfo, labels_match
from .errors import UserError
from .log import get_logger

__all__ = ["FileGroupProvider", "Fleet", "GroupDefinition", "ServerGroupProvider", "load_provider", "parse_definitions"]

log = get_logger("waterflow.groups")


class GroupDefinition(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """One group as a provider defines it (members are the union of the three rules)."""

    name: str
    description: str = ""
    agents: tuple[str, ...] = ()
    labels: dict[str, str] = {}
    """Selector: agents having all these labels (an empty value means "has the key")."""
    include: tuple[str, ...] = ()
    """Other groups (declared or defined) whose members are members of this one."""


class ServerGroupProvider:
    """Base provider: defines no groups, so only the groups agents declare exist.

    Override :meth:`definitions` to add groups from elsewhere; every other method works from it.
    Methods are called often (each fan-out, each API listing): cache in the subclass if the
    source is slow, as :class:`FileGroupProvider` does.
    """

    error: str | None = None
    """Why the last (re)load failed, shown by ``GET /v1/groups``; None when all is well."""
    source: str = "agents"
    """Where definitions come from, for people (a path, a URL)."""

    def definitions(self) -> dict[str, GroupDefinition]:
        """Defined groups by name. The base class defines none."""
        return {}

    def group_names(self, agents: Iterable[AgentInfo]) -> list[str]:
        """Every group that exists: declared by an agent or defined, sorted."""
        names = set(self.definitions())
        for agent in agents:
            names.update(agent.groups)
        return sorted(names)

    def members(self, group: str, agents: Sequence[AgentInfo]) -> list[AgentInfo]:
        """The agents (of ``agents``) that belong to ``group``, in the given order."""
        definitions = self.definitions()
        wanted = self._member_names(group, agents, definitions, set())
        return [agent for agent in agents if agent.name in wanted]

    def _member_names(
        self, group: str, agents: Sequence[AgentInfo], definitions: dict[str, GroupDefinition], seen: set[str]
    ) -> set[str]:
        if group in seen:  # a cycle; FileGroupProvider rejects them, a plugin might not
            return set()
        seen.add(group)
        names = {agent.name for agent in agents if group in agent.groups}
        definition = definitions.get(group)
        if definition is not None:
            names.update(definition.agents)
            if definition.labels:
                required = [f"{k}={v}" if v else k for k, v in definition.labels.items()]
                names.update(agent.name for agent in agents if labels_match(agent.labels, required))
            for included in definition.include:
                names |= self._member_names(included, agents, definitions, seen)
        return names


def parse_definitions(text: str, source: str = "server-groups.yml") -> dict[str, GroupDefinition]:
    """Parse and check a server-groups.yml text; raises UserError naming every problem."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{source}: not valid YAML: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("groups", {}), dict):
        raise UserError(f"{source}: expected a mapping 'groups: {{<name>: {{agents, labels, include}}}}'")
    problems: list[str] = []
    definitions: dict[str, GroupDefinition] = {}
    for name, body in (raw.get("groups") or {}).items():
        name = str(name)
        try:
            subjects.check_group(name, "group name")
            body = dict(body or {})
            if isinstance(body.get("labels"), dict):
                body["labels"] = {str(k): "" if v is None else str(v) for k, v in body["labels"].items()}
            definitions[name] = msgspec.convert({**body, "name": name}, GroupDefinition)
        except (ValueError, TypeError, msgspec.ValidationError) as error:
            problems.append(f"group {name!r}: {error}")
    for name in definitions:
        cycle = _find_cycle(name, definitions, [])
        if cycle:
            problems.append(f"group {name!r}: includes itself through {' -> '.join(cycle)}")
            break
    if problems:
        raise UserError(f"{source}: " + "; ".join(problems))
    return definitions


def _find_cycle(name: str, definitions: dict[str, GroupDefinition], path: list[str]) -> list[str] | None:
    if name in path:
        return path[path.index(name):] + [name]
    definition = definitions.get(name)
    if definition is None:
        return None  # including a group only agents declare is fine
    for included in definition.include:
        cycle = _find_cycle(included, definitions, path + [name])
        if cycle:
            return cycle
    return None


class FileGroupProvider(ServerGroupProvider):
    """Groups from a ``server-groups.yml``, re-read when the file changes (mtime or size)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self.source = str(self.path)
        self._stamp: tuple[int, int] | None = None
        self._definitions: dict[str, GroupDefinition] = {}
        self.error = None
        self.definitions()

    def definitions(self) -> dict[str, GroupDefinition]:
        try:
            stat = self.path.stat()
        except OSError as error:
            self.error = f"cannot read {self.path}: {error.strerror}"
            return self._definitions
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._definitions = parse_definitions(self.path.read_text(encoding="utf-8"), str(self.path))
                self.error = None
                log.info("groups.loaded", path=str(self.path), groups=len(self._definitions))
            except (UserError, OSError, UnicodeDecodeError) as error:
                self.error = str(error)
                log.warning("groups.load_failed", path=str(self.path), error=self.error)
        return self._definitions


def load_provider(setting: str | None) -> ServerGroupProvider:
    """The provider a ``server_groups`` setting names.

    ``None`` or empty: agents' own groups only; ``python:pkg.module:Class``: a plugin class,
    built without arguments; anything else: the path of a server-groups.yml.
    """
    if not setting:
        return ServerGroupProvider()
    if setting.startswith("python:"):
        module_name, _, class_name = setting[len("python:"):].partition(":")
        try:
            provider_class = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise UserError(f"server groups provider {setting!r} cannot be loaded: {error}") from None
        provider = provider_class()
        if not isinstance(provider, ServerGroupProvider):
            raise UserError(f"{setting!r} is not a waterflow_common.groups.ServerGroupProvider subclass")
        return provider
    return FileGroupProvider(setting)


class Fleet:
    """The healthy agents as a scheduler saw them at one moment, and who of them may run a job.

    Built once from one listing of ``wf_agents`` (the scheduler reuses it for a couple of
    seconds) so that the pure state machine can ask, for any group named at run time (also one
    that came from an expression), which agents are healthy members, without I/O.
    """

    def __init__(self, agents: Sequence[AgentInfo], provider: ServerGroupProvider | None = None) -> None:
        self.agents = list(agents)
        self.provider = provider or ServerGroupProvider()
        self._answers: dict[tuple[str, tuple[str, ...]], list[str]] = {}

    @classmethod
    def of(cls, groups: dict[str, Sequence[str]]) -> Fleet:
        """A fleet from ``{group: [agent names]}`` (tests, tools)."""
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        by_name: dict[str, list[str]] = {}
        for group, names in groups.items():
            for name in names:
                by_name.setdefault(name, []).append(group)
        return cls([AgentInfo(name=n, groups=tuple(g), started_at=now, heartbeat_at=now) for n, g in by_name.items()])

    def healthy(self, group: str, labels: Sequence[str] = ()) -> list[str]:
        """Names of the healthy members of ``group`` having every label, sorted."""
        key = (group, tuple(labels))
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answers[key] = sorted(
                a.name for a in self.provider.members(group, self.agents) if labels_match(a.labels, labels)
            )
        return answer
