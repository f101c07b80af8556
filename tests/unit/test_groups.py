"""Server groups: declared by agents, defined in server-groups.yml (nested, label selectors),
reloaded when the file changes; agent health from heartbeat age; agent settings precedence."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from waterflow_agent.config import load_agent_settings
from waterflow_common.agents import AgentInfo, agent_status, labels_match
from waterflow_common.auth import agent_permissions, init_auth, load_auth, parse_agent_spec, render_server_config
from waterflow_common.errors import UserError
from waterflow_common.groups import FileGroupProvider, ServerGroupProvider, load_provider, parse_definitions

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def agent(name: str, groups: tuple[str, ...] = (), interval: float = 5.0, **labels: str) -> AgentInfo:
    return AgentInfo(name=name, groups=groups, labels=labels, started_at=NOW, heartbeat_at=NOW, heartbeat_interval=interval)


AGENTS = [
    agent("web-1", ("web",), env="prod", role="web"),
    agent("web-2", ("web",), env="staging", role="web"),
    agent("db-1", ("db",), env="prod", role="db"),
    agent("gpu-1", (), env="prod", gpu=""),
]

GROUPS_YML = """
groups:
  prod-web:
    description: production front ends
    labels: {env: prod, role: web}
  databases:
    agents: [db-1]
  prod:
    include: [prod-web, databases, accelerators]
  accelerators:
    labels: {gpu: }
"""


def names(agents: list[AgentInfo]) -> list[str]:
    return [a.name for a in agents]


def test_declared_groups_exist_without_any_definition() -> None:
    provider = ServerGroupProvider()
    assert provider.group_names(AGENTS) == ["db", "web"]
    assert names(provider.members("web", AGENTS)) == ["web-1", "web-2"]
    assert provider.members("nope", AGENTS) == []


def test_nested_groups_and_label_selectors(tmp_path: Path) -> None:
    path = tmp_path / "server-groups.yml"
    path.write_text(GROUPS_YML)
    provider = FileGroupProvider(path)
    assert provider.error is None
    assert names(provider.members("prod-web", AGENTS)) == ["web-1"]
    assert names(provider.members("accelerators", AGENTS)) == ["gpu-1"]
    assert names(provider.members("prod", AGENTS)) == ["web-1", "db-1", "gpu-1"]
    assert provider.group_names(AGENTS) == ["accelerators", "databases", "db", "prod", "prod-web", "web"]


def test_file_is_reloaded_when_it_changes_and_a_broken_edit_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "server-groups.yml"
    path.write_text(GROUPS_YML)
    provider = FileGroupProvider(path)
    path.write_text("groups:\n  staging:\n    labels: {env: staging}\n")
    os.utime(path, ns=(1, 1))  # a different mtime even within one clock tick
    assert names(provider.members("staging", AGENTS)) == ["web-2"]
    assert "prod" not in provider.definitions()
    path.write_text("groups:\n  a:\n    include: [b]\n  b:\n    include: [a]\n")
    os.utime(path, ns=(2, 2))
    assert names(provider.members("staging", AGENTS)) == ["web-2"]
    assert provider.error is not None and "includes itself" in provider.error


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("groups: [a, b]", "expected a mapping"),
        ("groups:\n  bad name:\n    agents: [x]\n", "invalid group name"),
        ("groups:\n  a:\n    agnets: [x]\n", "agnets"),
        ("groups: {a: {include: [a]}}", "includes itself"),
        ("groups: [", "not valid YAML"),
    ],
)
def test_bad_definitions_are_user_errors(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_definitions(text)


def test_load_provider_from_setting(tmp_path: Path) -> None:
    assert type(load_provider(None)) is ServerGroupProvider
    path = tmp_path / "g.yml"
    path.write_text(GROUPS_YML)
    assert isinstance(load_provider(str(path)), FileGroupProvider)
    assert type(load_provider("python:waterflow_common.groups:ServerGroupProvider")) is ServerGroupProvider
    with pytest.raises(UserError, match="cannot be loaded"):
        load_provider("python:no_such_module:Thing")


def test_health_from_heartbeat_age() -> None:
    info = agent("a", interval=2.0)
    assert agent_status(info, 0.0) == "healthy"
    assert agent_status(info, 5.9) == "healthy"
    assert agent_status(info, 6.0) == "unhealthy"
    assert agent_status(info, 24.0) == "unhealthy"
    assert agent_status(info, 24.1) == "offline"
    stopped = AgentInfo(name="a", started_at=NOW, heartbeat_at=NOW, stopped=True)
    assert agent_status(stopped, 0.0) == "offline"


def test_label_requirements() -> None:
    labels = {"env": "prod", "gpu": ""}
    assert labels_match(labels, [])
    assert labels_match(labels, ["env=prod", "gpu"])
    assert not labels_match(labels, ["env=staging"])
    assert not labels_match(labels, ["role"])


def test_agent_settings_precedence_flags_env_file_defaults(tmp_path: Path) -> None:
    config = tmp_path / "agent.yml"
    config.write_text(
        "name: from-file\ngroups: [web, prod]\nlabels: {env: prod}\nmax-concurrent: 7\nwork_dir: /from/file\n"
    )
    environ = {"WATERFLOW_CONFIG": str(config), "WATERFLOW_WORK_DIR": "/from/env", "WATERFLOW_LABELS": "env=staging,role=web"}
    settings = load_agent_settings({"agent_name": "from-flag", "groups": None}, environ=environ)
    assert settings.agent_name == "from-flag"
    assert settings.groups == ["web", "prod"]
    assert settings.work_dir == "/from/env"
    assert settings.labels == {"env": "staging", "role": "web"}
    assert settings.max_concurrent_steps == 7
    assert settings.heartbeat_interval == 5.0
    assert settings.config == str(config)


@pytest.mark.parametrize(
    ("text", "message"),
    [("nme: x\n", "unknown setting 'nme'"), ("groups: ['a b']\n", "invalid server group"), ("- x\n", "expected a mapping")],
)
def test_bad_agent_config_is_a_user_error(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "agent.yml"
    config.write_text(text)
    with pytest.raises(UserError, match=message):
        load_agent_settings({}, environ={}, config_path=str(config))


def test_auth_init_is_additive_and_permissions_are_per_agent(tmp_path: Path) -> None:
    first = init_auth(tmp_path, {"web-1": ("web",)})
    second = init_auth(tmp_path, {"db-1": ("db",)})
    assert second.services_password == first.services_password
    assert second.agents["web-1"].password == first.agents["web-1"].password
    assert load_auth(tmp_path) == second
    assert (tmp_path / "auth.json").stat().st_mode & 0o777 == 0o600
    permissions = agent_permissions("web-1", ["web"])
    publish = permissions["publish"]["allow"]  # type: ignore[index]
    assert "$JS.API.CONSUMER.MSG.NEXT.WF_TASKS.group-web" in publish
    assert "$JS.API.CONSUMER.MSG.NEXT.WF_TASKS.agent-web-1" in publish
    assert not any("group-db" in subject for subject in publish)
    assert permissions["subscribe"]["allow"] == ["_INBOX_web-1.>", "wf.control.agent.web-1"]  # type: ignore[index]
    assert '"user": "db-1"' in render_server_config(second)
    assert parse_agent_spec("a:web, prod") == ("a", ("web", "prod"))
    with pytest.raises(UserError):
        parse_agent_spec("bad name:web")


def test_lost_agents_have_their_pinned_steps_reported_failed() -> None:
    from waterflow_common.agents import AgentRecord, lost_step_failures
    from waterflow_common.messages import step_key

    def record(name: str, age: float, pinned: tuple[str, ...], **fields: object) -> AgentRecord:
        info = AgentInfo(name=name, started_at=NOW, heartbeat_at=NOW, heartbeat_interval=1.0,
                         running_steps=pinned + (step_key("r1", "other", 0, 1, 1),), pinned_steps=pinned, **fields)  # type: ignore[arg-type]
        return AgentRecord(info=info, status=agent_status(info, age), seen_at=NOW, age_seconds=age)

    records = [
        record("alive", 2.0, ("r1:check-alive:0:1:1",)),
        record("gone", 7.0, ("r1:check-gone:0:1:1", "r2:x-gone:3:2:4", "r2:malformed:3:2")),
        record("already", 60.0, ("r1:check-already:0:1:1",), lost_at=NOW),
    ]
    failures = lost_step_failures(records)
    assert [(r.info.name, e.run_id, e.job_id, e.step_index, e.attempt, e.task, e.agent_lost) for r, e in failures] == [
        ("gone", "r1", "check-gone", 0, 1, 1, True), ("gone", "r2", "x-gone", 3, 2, 4, True),
    ]  # the job task each step ran in: the scheduler takes only its current task's events
    error = failures[0][1].error or ""
    assert error.startswith("agent gone lost: no heartbeat for 7s")
    assert agent_status(records[2].info, 0.0) == "offline"


# --- the examples in docs/guides/agents.md and security.md run -----------------------------------
GUIDES = Path(__file__).resolve().parents[2] / "docs" / "guides"


def _blocks(doc: str, language: str) -> list[str]:
    import re

    text = (GUIDES / doc).read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def test_agents_guide_agent_yml_and_server_groups_yml_are_valid(tmp_path: Path) -> None:
    files = {block.splitlines()[0].removeprefix("# file: "): block for block in _blocks("agents.md", "yaml")
             if block.startswith("# file: ")}
    config = tmp_path / "agent.yml"
    config.write_text(files["agent.yml"])
    settings = load_agent_settings({}, environ={}, config_path=str(config))
    assert settings.groups == ["web", "prod"] and settings.labels == {"env": "prod", "role": "web", "ssd": ""}
    definitions = parse_definitions(files["server-groups.yml"])
    provider = ServerGroupProvider()
    provider.definitions = lambda: definitions  # type: ignore[method-assign]
    prod = [agent("web-9", (), env="prod", role="web"), agent("db-1"), agent("x", (), env="dev")]
    assert names(provider.members("prod", prod)) == ["web-9", "db-1"]


def test_agents_guide_cmdb_provider_works(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    (source,) = _blocks("agents.md", "python")
    module = types.ModuleType("mycompany_waterflow_groups_doc")
    exec(compile(source, "docs/guides/agents.md", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    provider = load_provider(f"python:{module.__name__}:CmdbGroups")
    assert names(provider.members("prod-web", AGENTS)) == ["web-1"]


def test_security_guide_auth_init_command_works(tmp_path: Path) -> None:
    import shlex

    from waterflow.cli import main

    command = next(b for b in _blocks("security.md", "bash") if b.startswith("waterflow auth init"))
    argv = shlex.split(command.replace("\\\n", " "))[1:]
    argv[argv.index("--dir") + 1] = str(tmp_path / "auth")
    assert main(argv) == 0
    auth = load_auth(tmp_path / "auth")
    assert auth is not None and sorted(auth.agents) == ["db-1", "web-1", "web-2"]
    assert auth.agents["web-1"].groups == ("web", "prod")
    agent_yml = tmp_path / "auth" / "agents" / "web-1.yml"
    settings = load_agent_settings({}, environ={}, config_path=str(agent_yml))
    assert (settings.agent_name, settings.nats_user, settings.nats_url) == ("web-1", "web-1", "nats://nats.internal:4222")
    assert "WATERFLOW_NATS_USER=services" in (tmp_path / "auth" / "services.env").read_text()
