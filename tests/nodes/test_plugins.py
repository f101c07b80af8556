"""Discovery: plugin directory with hot reload, broken plugins, entry points, the catalog."""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from nodetest import NodeRunner
from waterflow_agent.nodes import NodeRegistry, builtin_catalog, describe

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PLUGIN = REPO_ROOT / "examples" / "plugins" / "semver_bump.py"

ECHO_NODE = '''
from waterflow_agent.nodes import Node

class Echo(Node):
    name = "test/echo"
    schema = {{"type": "object", "properties": {{"text": {{"type": "string"}}}}, "additionalProperties": False}}
    outputs = {{"said": "what it said"}}

    async def execute(self, ctx, params):
        ctx.log.info("{prefix}" + params["text"])
        return {{"said": "{prefix}" + params["text"]}}
'''


def _write(path: Path, text: str) -> None:
    # Write to a temp file and rename: a reader never sees half a file (as editors and deploy tools do).
    partial = path.with_suffix(".tmp")
    partial.write_text(textwrap.dedent(text))
    partial.replace(path)


async def test_example_plugin_from_the_plugin_dir(run_node: NodeRunner, plugin_dir: Path) -> None:
    assert len(EXAMPLE_PLUGIN.read_text().splitlines()) < 50
    shutil.copy(EXAMPLE_PLUGIN, plugin_dir / EXAMPLE_PLUGIN.name)
    step = await run_node("semver/bump@v1", {"current": "v1.4.2", "part": "minor"})
    assert step.result.succeeded, step.result.error
    assert step.result.outputs == {"version": "v1.5.0", "previous": "v1.4.2"}
    assert ("stdout", "v1.4.2 -> v1.5.0") in step.lines
    bad = await run_node("semver/bump@v1", {"current": "banana"})
    assert not bad.result.retryable and "not a version like 1.4.2" in (bad.result.error or "")
    typo = await run_node("semver/bump@v1", {"current": "1.0.0", "part": "mayor"})
    assert not typo.result.retryable and "with.part: 'mayor' is not one of" in (typo.result.error or "")


async def test_add_change_remove_take_effect_on_the_next_step(run_node: NodeRunner, plugin_dir: Path) -> None:
    missing = await run_node("test/echo@v1", {"text": "x"})
    assert "unknown node" in (missing.result.error or "")

    _write(plugin_dir / "echo.py", ECHO_NODE.format(prefix="one:"))
    first = await run_node("test/echo@v1", {"text": "x"})
    assert first.result.outputs == {"said": "one:x"}

    _write(plugin_dir / "echo.py", ECHO_NODE.format(prefix="two:"))
    second = await run_node("test/echo", {"text": "x"})
    assert second.result.outputs == {"said": "two:x"}

    (plugin_dir / "echo.py").unlink()
    gone = await run_node("test/echo@v1", {"text": "x"})
    assert not gone.result.succeeded and "unknown node" in (gone.result.error or "")
    assert not [m for m in sys.modules if m.startswith("waterflow_plugins.echo")]


async def test_broken_plugin_is_reported_and_the_rest_keeps_working(run_node: NodeRunner, plugin_dir: Path) -> None:
    _write(plugin_dir / "echo.py", ECHO_NODE.format(prefix=""))
    _write(plugin_dir / "syntax.py", "def broken(:\n    pass\n")
    _write(plugin_dir / "raises.py", "import json\nraise RuntimeError('no config for you')\n")
    _write(plugin_dir / "exits.py", "import sys\nsys.exit(3)\n")
    _write(plugin_dir / "empty.py", "X = 1\n")
    _write(plugin_dir / "clash.py", "from waterflow_agent.nodes import Node\n"
           "class H(Node):\n    name = 'http'\n    async def execute(self, ctx, params):\n        return {}\n")
    _write(plugin_dir / "sync.py", "from waterflow_agent.nodes import Node\n"
           "class S(Node):\n    name = 'test/sync'\n    def execute(self, ctx, params):\n        return {}\n")

    specs = {s["source"].rsplit("/", 1)[-1]: s for s in describe(run_node.registry) if s["status"] == "failed"}
    assert specs["syntax.py"]["error"].startswith("SyntaxError at syntax.py:1")
    assert specs["raises.py"]["error"] == "RuntimeError: no config for you (at raises.py:2)"
    assert "SystemExit" in specs["exits.py"]["error"]
    assert "defines no Node subclass" in specs["empty.py"]["error"]
    assert "http@v1 is already provided by builtin" in specs["clash.py"]["error"]
    assert "execute() must be 'async def'" in specs["sync.py"]["error"]
    ok = [s for s in describe(run_node.registry) if s["status"] == "ok"]
    assert {"test/echo", "http", "shell"} <= {s["name"] for s in ok}

    step = await run_node("test/echo@v1", {"text": "still fine"})
    assert step.result.outputs == {"said": "still fine"}
    step = await run_node("shell", {"run": "echo fine"})
    assert step.result.succeeded
    step = await run_node("syntax@v1")
    assert not step.result.retryable and "its plugin failed to load: SyntaxError" in (step.result.error or "")

    # Fixing the file heals it on the next step.
    _write(plugin_dir / "syntax.py", ECHO_NODE.replace("test/echo", "test/fixed").format(prefix="fixed:"))
    step = await run_node("test/fixed@v1", {"text": "!"})
    assert step.result.outputs == {"said": "fixed:!"}


async def test_a_crashing_node_fails_its_step_not_the_agent(run_node: NodeRunner, plugin_dir: Path) -> None:
    _write(plugin_dir / "crash.py", "from waterflow_agent.nodes import Node\n"
           "class C(Node):\n    name = 'test/crash'\n    async def execute(self, ctx, params):\n        return {}['x']\n")
    step = await run_node("test/crash@v1")
    assert not step.result.retryable
    assert step.result.error == "node test/crash@v1 failed unexpectedly: KeyError: 'x' (a bug in the node)"


async def test_plugin_package_with_relative_imports(run_node: NodeRunner, plugin_dir: Path) -> None:
    package = plugin_dir / "mytools"
    package.mkdir()
    (package / "helpers.py").write_text("def shout(text):\n    return text.upper()\n")
    (package / "__init__.py").write_text(
        "from waterflow_agent.nodes import Node\nfrom .helpers import shout\n"
        "class Shout(Node):\n    name = 'my/shout'\n    version = 'v2'\n"
        "    schema = {'type': 'object', 'required': ['text'], 'properties': {'text': {'type': 'string'}}}\n"
        "    async def execute(self, ctx, params):\n        return {'text': shout(params['text'])}\n")
    step = await run_node("my/shout@v2", {"text": "hey"})
    assert step.result.outputs == {"text": "HEY"}
    (package / "helpers.py").write_text("def shout(text):\n    return text.upper() + '!'\n")
    step = await run_node("my/shout@v2", {"text": "hey"})
    assert step.result.outputs == {"text": "HEY!"}


@pytest.fixture
def installed_distribution(tmp_path: Path) -> Iterator[Path]:
    """A real installed distribution (a .dist-info with entry_points.txt) on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_nodes.py").write_text(EXAMPLE_PLUGIN.read_text().replace('"semver/bump"', '"acme/bump"'))
    (site / "acme_broken.py").write_text("raise ImportError('acme_broken needs libfoo')\n")
    info = site / "acme_nodes-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-nodes\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[waterflow.nodes]\nbump = acme_nodes:SemverBump\nbroken = acme_broken\n")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    yield site
    sys.path.remove(str(site))
    sys.modules.pop("acme_nodes", None)
    sys.modules.pop("acme_broken", None)


async def test_entry_point_nodes(installed_distribution: Path, run_node: NodeRunner) -> None:
    eps = importlib.metadata.entry_points(group="waterflow.nodes")
    assert {"bump", "broken"} <= {ep.name for ep in eps}
    run_node.registry = NodeRegistry(None)
    step = await run_node("acme/bump@v1", {"current": "2.0.9"})
    assert step.result.outputs == {"version": "2.0.10", "previous": "2.0.9"}
    specs = describe(run_node.registry)
    bump = next(s for s in specs if s["name"] == "acme/bump")
    assert bump["source"] == "entry-point:acme-nodes:acme_nodes:SemverBump" and bump["status"] == "ok"
    broken = next(s for s in specs if s["status"] == "failed")
    assert "acme_broken needs libfoo" in broken["error"] and broken["source"].startswith("entry-point:acme-nodes")


def test_builtin_catalog_has_valid_schemas_for_every_builtin() -> None:
    catalog = builtin_catalog()
    expected = {"shell", "run", "script", "http", "wait-for", "file/upload", "file/download", "docker",
                "docker/compose-up", "docker/compose-down", "checkout", "env/set", "config/edit", "sleep"}
    assert set(catalog) == expected
    for versions in catalog.values():
        for schema in versions.values():
            jsonschema.Draft202012Validator.check_schema(schema)
    catalog["http"]["v1"]["required"].append("mutated")
    assert builtin_catalog()["http"]["v1"]["required"] == ["url"]


def test_describe_lists_builtins_with_their_specs() -> None:
    specs = describe(NodeRegistry(None, entry_points=False))
    http = next(s for s in specs if s["name"] == "http")
    assert http["version"] == "v1" and http["status"] == "ok" and http["source"] == "builtin"
    assert "status" in http["outputs"] and http["schema"]["required"] == ["url"] and http["error"] is None


def test_public_api_names_import() -> None:
    from waterflow_agent import nodes

    for name in nodes.__all__:
        assert getattr(nodes, name) is not None


async def test_a_node_whose_constructor_fails(run_node: NodeRunner, plugin_dir: Path) -> None:
    _write(plugin_dir / "ctor.py", "from waterflow_agent.nodes import Node\n"
           "class C(Node):\n    name = 'test/ctor'\n    def __init__(self):\n        raise OSError('no license file')\n"
           "    async def execute(self, ctx, params):\n        return {}\n")
    step = await run_node("test/ctor@v1")
    assert not step.result.retryable
    assert step.result.error == "node 'test/ctor@v1' could not be created: OSError: no license file"
