"""Pure parts of groups defined through the API (group_store.py): what a definition may hold,
which definition wins when the file and the API define the same name, and why an agent is a
member. The KV side (revision-checked writes, the watch) is covered by tests/e2e/test_group_admin.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from waterflow_common.agents import AgentInfo
from waterflow_common.group_store import (
    GroupConflict,
    InvalidGroup,
    StoredGroupProvider,
    check_definition,
    membership_reasons,
)
from waterflow_common.groups import FileGroupProvider, GroupDefinition, ServerGroupProvider

NOW = datetime.now(UTC)


def agent(name: str, groups: tuple[str, ...] = (), **labels: str) -> AgentInfo:
    return AgentInfo(name=name, groups=groups, labels=labels, started_at=NOW, heartbeat_at=NOW)


@pytest.mark.parametrize(("definition", "expected"), [
    (GroupDefinition(name="bad..name"), "invalid group name"),
    (GroupDefinition(name="g", agents=("has space",)), "invalid agent name"),
    (GroupDefinition(name="g", include=("no*wild",)), "invalid included group"),
    (GroupDefinition(name="g", labels={"a=b": "c"}), "label key"),
    (GroupDefinition(name="g", include=("g",)), "includes itself"),
    (GroupDefinition(name="g", description="x" * 1025), "over the limit of 1024"),
    (GroupDefinition(name="g", agents=tuple(f"agent-{i:06d}-{'x' * 100}" for i in range(3000))), "over the limit of 262144"),
])
def test_a_bad_definition_is_refused_naming_the_problem(definition: GroupDefinition, expected: str) -> None:
    with pytest.raises(InvalidGroup, match=expected.replace("*", r"\*")):
        check_definition(definition)


def test_a_good_definition_passes() -> None:
    good = GroupDefinition(name="ubuntu-22.04", agents=("web-1",), labels={"env": "prod", "gpu": ""}, include=("db",))
    assert check_definition(good) is good


def test_the_file_wins_and_the_stored_definition_is_shadowed(tmp_path: Path) -> None:
    path = tmp_path / "server-groups.yml"
    path.write_text("groups:\n  web:\n    agents: [web-1]\n")
    provider = StoredGroupProvider(FileGroupProvider(path))
    provider.stored = {"web": GroupDefinition(name="web", agents=("web-2",)),
                       "api-only": GroupDefinition(name="api-only", agents=("web-2",), include=("web",))}
    fleet = [agent("web-1"), agent("web-2"), agent("db-1", ("api-only",))]

    assert provider.definitions()["web"].agents == ("web-1",)
    assert (provider.origin("web"), provider.origin("api-only"), provider.origin("nope")) == ("file", "api", None)
    assert provider.shadowed("web") == provider.stored["web"] and provider.shadowed("api-only") is None
    assert [a.name for a in provider.members("web", fleet)] == ["web-1"]
    assert [a.name for a in provider.members("api-only", fleet)] == ["web-1", "web-2", "db-1"]
    assert provider.group_names(fleet) == ["api-only", "web"]
    assert str(path) in provider.source and "wf_groups" in provider.source
    with pytest.raises(GroupConflict, match="edit that file"):
        provider._check_editable("web")
    provider._check_editable("api-only")


def test_an_include_cycle_through_the_file_is_found() -> None:
    class Fixed(ServerGroupProvider):
        def definitions(self) -> dict[str, GroupDefinition]:
            return {"a": GroupDefinition(name="a", include=("b",))}

    provider = StoredGroupProvider(Fixed())
    with pytest.raises(InvalidGroup, match="b -> a -> b"):
        provider._check_cycle(GroupDefinition(name="b", include=("a",)))


def test_a_plugin_that_decides_members_itself_keeps_doing_so() -> None:
    class Cmdb(ServerGroupProvider):
        def members(self, group: str, agents):  # type: ignore[no-untyped-def, override]
            return [a for a in agents if a.name.startswith(group)]

    provider = StoredGroupProvider(Cmdb())
    provider.stored = {"web": GroupDefinition(name="web", agents=("db-1",))}
    fleet = [agent("web-1"), agent("db-1"), agent("other")]
    assert [a.name for a in provider.members("web", fleet)] == ["web-1", "db-1"]


def test_membership_reasons_say_why_an_agent_is_a_member_besides_its_name() -> None:
    definitions = {"edge": GroupDefinition(name="edge", labels={"role": "edge"}, include=("own",))}
    assert membership_reasons("edge", agent("a-1"), definitions) == []
    assert membership_reasons("edge", None, definitions) == []
    reasons = membership_reasons("edge", agent("a-2", ("edge", "own"), role="edge"), definitions)
    assert [r.split(" ")[0] for r in reasons] == ["agent", "its", "it"], reasons
    assert "declares group 'edge' itself" in reasons[0] and "role=edge" in reasons[1] and "'own'" in reasons[2]
