"""deploy/compose and deploy/helm: well-formed, and consistent with the code they start.

No container engine or helm binary is needed: the compose file is checked with
``docker-compose config`` where that is installed (it only parses), and always structurally;
the helm templates are checked by a crude render (template actions replaced by placeholders)
that must still be YAML, and every ``.Values`` path they use must exist in values.yaml.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from waterflow.cli import build_parser
from waterflow_common import settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
CHART = ROOT / "deploy" / "helm" / "waterflow"
SERVICES = ("api", "compiler", "scheduler", "agent")


def _setting_variables() -> set[str]:
    names = set()
    for cls in (settings.ApiSettings, settings.CompilerSettings, settings.SchedulerSettings, settings.AgentSettings):
        names |= {f"WATERFLOW_{field.name.upper()}" for field in msgspec.structs.fields(cls)}
    return names


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_nats_and_every_service() -> None:
    services = _compose()["services"]
    assert set(SERVICES) | {"nats"} <= set(services)
    assert "-js" in services["nats"]["command"], "NATS must run with JetStream"


def test_compose_commands_are_real_cli_commands() -> None:
    parser = build_parser()
    for name in SERVICES:
        command = _compose()["services"][name]["command"]
        args = parser.parse_args(command)
        assert args.command == name


def test_compose_builds_from_the_dockerfile_and_sets_real_settings() -> None:
    known = _setting_variables()
    for name in SERVICES:
        service = _compose()["services"][name]
        assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        unknown = {k for k in service["environment"] if k.startswith("WATERFLOW_")} - known
        assert not unknown, f"{name}: {unknown} are not settings"


def test_docker_compose_config_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed")
    completed = subprocess.run([binary, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr


def test_dockerfile_installs_the_repository_and_runs_waterflow() -> None:
    text = (COMPOSE.parent / "Dockerfile").read_text()
    assert "pip install ." in text
    assert '"waterflow"]' in text


# --- helm ----------------------------------------------------------------------------------------
def _crude_render(text: str) -> str:
    """Drop lines that are only template actions; replace inline actions with a scalar."""
    lines = []
    for line in text.splitlines():
        if re.fullmatch(r"\s*\{\{-?.*?-?\}\}\s*", line):
            continue
        lines.append(re.sub(r"\{\{-?.*?-?\}\}", "X", line))
    return "\n".join(lines)


def test_chart_and_values_parse() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "waterflow"
    assert any(d["name"] == "nats" for d in chart.get("dependencies", []))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["agent"]["kind"] in ("deployment", "daemonset")


@pytest.mark.parametrize("template", sorted(p.name for p in (CHART / "templates").glob("*.yaml")))
def test_template_is_yaml_after_a_crude_render(template: str) -> None:
    documents = [d for d in yaml.safe_load_all(_crude_render((CHART / "templates" / template).read_text())) if d]
    for document in documents:
        assert "apiVersion" in document and "kind" in document and "metadata" in document


def test_every_values_path_used_by_the_templates_exists() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    used = set()
    for path in (CHART / "templates").iterdir():
        used |= set(re.findall(r"\.Values((?:\.\w+)+)", path.read_text()))
    missing = []
    for dotted in used:
        node: Any = values
        for part in dotted.strip(".").split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(dotted)
                break
            node = node[part]
    assert not missing, f"templates use values that values.yaml does not define: {sorted(missing)}"


def test_templates_set_only_real_settings() -> None:
    known = _setting_variables()
    used = set()
    for path in (CHART / "templates").iterdir():
        used |= set(re.findall(r"name: (WATERFLOW_\w+)", path.read_text()))
    assert used and used <= known, f"not settings: {sorted(used - known)}"


def test_pip_install_dot_installs_every_subpackage() -> None:
    """The Dockerfile (and the README quick start) use a non-editable ``pip install .``, which
    installs only the packages listed in pyproject.toml: a subpackage missing there works in the
    editable dev install and breaks every image."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    missing = []
    for package, directory in config["package-dir"].items():
        for init in (ROOT / directory).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / directory)
            if "tests" in relative.parts or any(p.startswith(".") for p in relative.parts):
                continue
            name = ".".join((package, *relative.parts))
            if name not in listed:
                missing.append(name)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
