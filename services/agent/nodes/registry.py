"""Which nodes this agent can run: built-ins, installed packages, and a watched plugin directory.

Three sources, in this order of precedence (a later source cannot replace an earlier name@version;
the clash is reported as a failed plugin instead, so a stray file cannot hijack ``http@v1``):

1. built-in nodes (:data:`BUILTIN_NODES`);
2. installed distributions exposing the entry-point group ``waterflow.nodes``; an entry point
   names a Node subclass, a list of them, or a module (all Node subclasses defined in it);
3. the plugin directory: ``*.py`` files and packages (directories with ``__init__.py``).

The plugin directory is re-scanned (a ``stat`` + content hash per plugin, cheap for a handful of
files) every time a step resolves a node and every time the agent describes its nodes; so adding,
changing or removing a file takes effect for the next step without restarting the agent and
without a watcher thread. A plugin that fails to import or declares a bad node is recorded with
its error (``describe()`` shows it as ``failed``) and logged once; the agent carries on.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.machinery
import importlib.util
import inspect
import re
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from waterflow_common.nodes import parse_uses as shared_parse_uses
from waterflow_common.errors import NonRetryableError
from waterflow_common.log import get_logger

from .base import Node

log = get_logger("waterflow.agent.nodes")

ENTRY_POINT_GROUP = "waterflow.nodes"
PLUGIN_MODULE_PREFIX = "waterflow_plugins"
_NAME = re.compile(r"^[a-z][a-z0-9-]*(/[a-z][a-z0-9-]*)*$")
_VERSION = re.compile(r"^v[0-9]+$")


class UnknownNode(NonRetryableError):
    """``uses:`` names a node this agent does not have."""


@dataclass(frozen=True)
class Registered:
    node: type[Node]
    source: str
    """``builtin``, ``entry-point:<dist>:<value>`` or ``plugin:<path>``."""


@dataclass(frozen=True)
class Failure:
    source: str
    error: str
    name: str = ""
    version: str = ""


@dataclass
class _Plugin:
    signature: str
    module_name: str
    nodes: list[type[Node]]
    error: str | None


def parse_uses(uses: str) -> tuple[str, str | None]:
    """``http@v1`` -> ("http", "v1"); ``http`` -> ("http", None) meaning the newest version
    (the shared grammar, ``waterflow_common.nodes``)."""
    try:
        return shared_parse_uses(uses, version_required=False)
    except ValueError as error:
        raise UnknownNode(str(error)) from None


def check_node(node: Any) -> str | None:
    """Why ``node`` is not a usable Node class, or None if it is."""
    if not (inspect.isclass(node) and issubclass(node, Node)):
        return f"{node!r} is not a subclass of waterflow_agent.nodes.Node"
    if not isinstance(node.name, str) or not _NAME.match(node.name):
        return f"{node.__qualname__}: invalid name {node.name!r} (lower-case words joined by '-' or '/', e.g. 'my/deploy')"
    if not isinstance(node.version, str) or not _VERSION.match(node.version):
        return f"{node.ref()}: invalid version {node.version!r} (expected 'v' and a number, e.g. 'v1')"
    if node.execute is Node.execute:
        return f"{node.ref()}: execute() is not implemented"
    if not inspect.iscoroutinefunction(node.execute):
        return f"{node.ref()}: execute() must be 'async def'"
    try:
        jsonschema.Draft202012Validator.check_schema(node.schema)
    except jsonschema.SchemaError as error:
        return f"{node.ref()}: its 'with' schema is not a valid JSON Schema: {error.message}"
    if not isinstance(node.outputs, dict):
        return f"{node.ref()}: 'outputs' must be a dict of name -> description"
    return None


def nodes_in(obj: Any) -> list[Any]:
    """The node classes an entry point or plugin module offers (``NODES`` if it defines one)."""
    if isinstance(obj, types.ModuleType):
        declared = getattr(obj, "NODES", None)
        if declared is not None:
            return list(declared)
        return [
            value for value in vars(obj).values()
            if inspect.isclass(value) and issubclass(value, Node) and value.__module__.startswith(obj.__name__)
            and value.name
        ]
    if isinstance(obj, (list, tuple)):
        return list(obj)
    return [obj]


class NodeRegistry:
    """The nodes of one agent. Not thread-safe: use it from the agent's event loop."""

    def __init__(self, plugin_dir: Path | str | None = None, *, builtins: bool = True, entry_points: bool = True) -> None:
        self.plugin_dir = Path(plugin_dir) if plugin_dir is not None else None
        self._fixed: dict[tuple[str, str], Registered] = {}
        self._fixed_failures: list[Failure] = []
        self._plugins: dict[Path, _Plugin] = {}
        if builtins:
            from .builtins import BUILTIN_NODES

            for node in BUILTIN_NODES:
                self._add_fixed(node, "builtin")
        if entry_points:
            self.load_entry_points()

    # --- sources ------------------------------------------------------------------------------
    def _add_fixed(self, node: Any, source: str) -> None:
        problem = check_node(node)
        if problem is None and (node.name, node.version) in self._fixed:
            problem = f"{node.ref()} is already provided by {self._fixed[(node.name, node.version)].source}"
        if problem:
            self._fixed_failures.append(Failure(source, problem, getattr(node, "name", ""), getattr(node, "version", "")))
            log.warning("node.rejected", source=source, error=problem)
            return
        self._fixed[(node.name, node.version)] = Registered(node, source)

    def load_entry_points(self) -> None:
        """Load every ``waterflow.nodes`` entry point of the installed distributions."""
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = entry.dist.name if entry.dist is not None else "?"
            source = f"entry-point:{dist}:{entry.value}"
            try:
                loaded = entry.load()
            except Exception as error:  # a broken package must not take the agent down
                message = f"could not load entry point {entry.name!r} ({entry.value}): {type(error).__name__}: {error}"
                self._fixed_failures.append(Failure(source, message))
                log.warning("node.entry_point_failed", source=source, error=message)
                continue
            for node in nodes_in(loaded):
                self._add_fixed(node, source)

    def refresh(self) -> None:
        """Re-scan the plugin directory; (re)load plugins that were added or changed."""
        if self.plugin_dir is None:
            return
        found: dict[Path, str] = {}
        if self.plugin_dir.is_dir():
            for path in sorted(self.plugin_dir.iterdir()):
                if path.name.startswith((".", "_")):
                    continue
                if path.is_file() and path.suffix == ".py":
                    found[path] = _signature([path], path.parent)
                elif path.is_dir() and (path / "__init__.py").is_file():
                    found[path] = _signature(sorted(path.rglob("*.py")), path)
        for path in list(self._plugins):
            if path not in found:
                _forget(self._plugins.pop(path).module_name)
                log.info("plugin.removed", path=str(path))
        for path, signature in found.items():
            known = self._plugins.get(path)
            if known is None or known.signature != signature:
                if known is not None:
                    _forget(known.module_name)
                self._plugins[path] = self._load_plugin(path, signature)

    def _load_plugin(self, path: Path, signature: str) -> _Plugin:
        module_name = f"{PLUGIN_MODULE_PREFIX}.{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{signature[:10]}"
        source = f"plugin:{path}"
        try:
            entry = path / "__init__.py" if path.is_dir() else path
            spec = importlib.util.spec_from_file_location(
                module_name, entry, loader=_FreshSourceLoader(module_name, str(entry)),
                submodule_search_locations=[str(path)] if path.is_dir() else None)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # relative imports and dataclasses need it
            spec.loader.exec_module(module)
            candidates = nodes_in(module)
            if not candidates:
                raise ValueError("defines no Node subclass (subclass waterflow_agent.nodes.Node and set 'name')")
            for node in candidates:
                problem = check_node(node)
                if problem:
                    raise ValueError(problem)
                if (node.name, node.version) in self._fixed:
                    raise ValueError(f"{node.ref()} is already provided by {self._fixed[(node.name, node.version)].source}")
                for other_path, other in self._plugins.items():
                    if other_path != path and any(n.ref() == node.ref() for n in other.nodes):
                        raise ValueError(f"{node.ref()} is already provided by plugin:{other_path}")
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                raise
            _forget(module_name)
            message = _describe_error(error, path)
            log.warning("plugin.failed", path=str(path), error=message)
            return _Plugin(signature, module_name, [], message)
        log.info("plugin.loaded", path=str(path), nodes=[n.ref() for n in candidates], source=source)
        return _Plugin(signature, module_name, candidates, None)

    # --- queries ------------------------------------------------------------------------------
    def entries(self) -> dict[tuple[str, str], Registered]:
        """Every usable node by (name, version), plugins included (call refresh() first)."""
        result = dict(self._fixed)
        for path, plugin in self._plugins.items():
            for node in plugin.nodes:
                result[(node.name, node.version)] = Registered(node, f"plugin:{path}")
        return result

    def failures(self) -> list[Failure]:
        result = list(self._fixed_failures)
        for path, plugin in self._plugins.items():
            if plugin.error is not None:
                result.append(Failure(f"plugin:{path}", plugin.error, name=path.stem))
        return result

    def resolve(self, uses: str) -> Registered:
        """The node a ``uses:`` names, after re-scanning the plugin directory.

        Raises UnknownNode (not retryable) with the versions that do exist, if any.
        """
        self.refresh()
        name, version = parse_uses(uses)
        entries = self.entries()
        if version is not None and (name, version) in entries:
            return entries[(name, version)]
        versions = sorted((v for (n, v) in entries if n == name), key=lambda v: int(v[1:]))
        if version is None and versions:
            return entries[(name, versions[-1])]
        failed = [f for f in self.failures() if f.name == name or Path(f.source).stem == name]
        if failed:
            raise UnknownNode(f"node {uses!r} is not available: its plugin failed to load: {failed[0].error}")
        if versions:
            raise UnknownNode(f"node {name!r} has no version {version!r} on this agent (available: {', '.join(versions)})")
        raise UnknownNode(f"unknown node {uses!r}: this agent has no node named {name!r} "
                          f"(see `waterflow node list`)")


class _FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles the plugin from its source every time. A cached .pyc is checked by the source's
    mtime (whole seconds) and size only, so a plugin edited twice within a second, to the same
    length, would otherwise load the old code."""

    def get_code(self, fullname: str) -> Any:
        return compile(self.get_data(self.path), self.path, "exec", dont_inherit=True)


def _signature(files: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        if "__pycache__" in file.parts:
            continue
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        try:
            digest.update(file.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


def _forget(module_name: str) -> None:
    for name in [n for n in sys.modules if n == module_name or n.startswith(module_name + ".")]:
        del sys.modules[name]


def _describe_error(error: BaseException, path: Path) -> str:
    if isinstance(error, SyntaxError):
        where = f"{Path(error.filename or path).name}:{error.lineno}" if error.lineno else path.name
        return f"SyntaxError at {where}: {error.msg}"
    tb = error.__traceback__
    line = None
    while tb is not None:  # the innermost frame inside the plugin tells the author where to look
        if str(path) in tb.tb_frame.f_code.co_filename:
            line = f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"
        tb = tb.tb_next
    text = f"{type(error).__name__}: {error}" if not isinstance(error, ValueError) or line else str(error)
    return f"{text} (at {line})" if line else text


_AGENT_REGISTRIES: dict[Path | None, NodeRegistry] = {}


def agent_registry(plugin_dir: Path | str | None) -> NodeRegistry:
    """The registry of this process for a plugin directory (built once, then reused)."""
    key = Path(plugin_dir) if plugin_dir is not None else None
    if key not in _AGENT_REGISTRIES:
        if key is not None:
            key.mkdir(parents=True, exist_ok=True)
        _AGENT_REGISTRIES[key] = NodeRegistry(key)
    return _AGENT_REGISTRIES[key]


def default_plugin_dir(settings: Any) -> Path:
    """``settings.plugin_dir`` if the agent settings have one, else ``plugins`` beside the work
    dir (``~/.waterflow/plugins`` by default)."""
    configured = getattr(settings, "plugin_dir", None)
    return Path(configured) if configured else Path(settings.work_dir).parent / "plugins"
