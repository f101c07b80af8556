"""``env/set`` (environment for the job's later steps) and ``config/edit`` (YAML/JSON/INI/.env keys).

``env/set`` appends to the job's env file — the same file ``run:`` steps reach as
``$WATERFLOW_ENV`` / ``$GITHUB_ENV`` — and the agent merges that file into the env of every later
step of the job. ``config/edit`` addresses keys by dotted path (``server.port``, ``items.0.name``;
for INI ``section.key``) and rewrites the file only when something changed. YAML, JSON and INI
files are re-serialised (comments in YAML/INI are not kept); ``.env`` files are edited line by line.
"""

from __future__ import annotations

import configparser
import io
import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from waterflow_common.errors import NonRetryableError

from .base import Node, NodeContext, string_outputs

_ENV_NAME = "^[A-Za-z_][A-Za-z0-9_]*$"


def format_env_entry(key: str, value: str) -> str:
    """One entry of an env/output file; multi-line values use the ``key<<DELIMITER`` form."""
    if "\n" not in value:
        return f"{key}={value}\n"
    delimiter = "WATERFLOW_EOF"
    while delimiter in value:
        delimiter += "_"
    return f"{key}<<{delimiter}\n{value}\n{delimiter}\n"


class EnvSet(Node):
    name = "env/set"
    description = "Set environment variables for the later steps of this job."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["env"],
        "properties": {
            "env": {"type": "object", "minProperties": 1, "propertyNames": {"pattern": _ENV_NAME},
                    "additionalProperties": {"type": ["string", "number", "boolean"]}},
        },
    }
    outputs = {"*": "each variable set, by name"}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        values = string_outputs(params["env"])
        if ctx.env_file is None:
            raise NonRetryableError("env/set needs a job env file (it runs only inside a job)")
        ctx.env_file.parent.mkdir(parents=True, exist_ok=True)
        with ctx.env_file.open("a") as handle:
            for key, value in values.items():
                handle.write(format_env_entry(key, value))
        ctx.log.system("set " + ", ".join(sorted(values)) + " for the next steps")
        return values


# --- config/edit -----------------------------------------------------------------------------
_FORMATS = {".yml": "yaml", ".yaml": "yaml", ".json": "json", ".ini": "ini", ".cfg": "ini", ".conf": "ini", ".env": "env"}
_MISSING = object()


def guess_format(path: Path) -> str | None:
    if path.name == ".env" or path.name.startswith(".env."):
        return "env"
    return _FORMATS.get(path.suffix.lower())


def _parts(key: str) -> list[str]:
    return [p for p in key.split(".") if p != ""] or [key]


def get_path(document: Any, key: str) -> Any:
    node = document
    for part in _parts(key):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def set_path(document: Any, key: str, value: Any) -> bool:
    parts = _parts(key)
    node: Any = document
    for index, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise NonRetryableError(f"cannot set {key!r}: {'.'.join(parts[:index]) or 'the document'} is not a mapping")
        node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        changed = node[int(last)] != value
        node[int(last)] = value
        return changed
    if not isinstance(node, dict):
        raise NonRetryableError(f"cannot set {key!r}: its parent is not a mapping")
    changed = node.get(last, _MISSING) != value
    node[last] = value
    return changed


def delete_path(document: Any, key: str) -> bool:
    parts = _parts(key)
    parent = get_path(document, ".".join(parts[:-1])) if len(parts) > 1 else document
    if isinstance(parent, dict) and parts[-1] in parent:
        del parent[parts[-1]]
        return True
    if isinstance(parent, list) and parts[-1].isdigit() and int(parts[-1]) < len(parent):
        del parent[int(parts[-1])]
        return True
    return False


class _EnvFile:
    """A .env file edited line by line, so comments and order survive."""

    _LINE = re.compile(r"^\s*(export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=(.*)$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def _find(self, key: str) -> int | None:
        for index, line in enumerate(self.lines):
            match = self._LINE.match(line)
            if match and match[2] == key:
                return index
        return None

    def get(self, key: str) -> Any:
        index = self._find(key)
        if index is None:
            return _MISSING
        raw = self._LINE.match(self.lines[index])[3].strip()  # type: ignore[index]
        if raw[:1] in ("'", '"'):
            try:
                return shlex.split(raw)[0] if raw[:1] == "'" else json.loads(raw)
            except ValueError:
                return raw.strip("'\"")
        return raw.split(" #")[0].strip()

    def set(self, key: str, value: Any) -> bool:
        text = value if isinstance(value, str) else json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        rendered = f"{key}={text}" if re.match(r"^[A-Za-z0-9_./:@,+-]*$", text) else f"{key}={json.dumps(text)}"
        index = self._find(key)
        if index is None:
            self.lines.append(rendered)
            return True
        changed = self.get(key) != text
        self.lines[index] = rendered
        return changed

    def delete(self, key: str) -> bool:
        index = self._find(key)
        if index is None:
            return False
        del self.lines[index]
        return True

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")


class _IniFile:
    def __init__(self, text: str) -> None:
        self.parser = configparser.ConfigParser(interpolation=None)
        self.parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
        self.parser.read_string(text)

    @staticmethod
    def _split(key: str) -> tuple[str, str]:
        section, dot, option = key.partition(".")
        if not dot:
            raise NonRetryableError(f"INI keys are 'section.key' (got {key!r})")
        return section, option

    def get(self, key: str) -> Any:
        section, option = self._split(key)
        return self.parser.get(section, option, fallback=_MISSING)

    def set(self, key: str, value: Any) -> bool:
        section, option = self._split(key)
        text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else json.dumps(value)
        if not self.parser.has_section(section) and section != self.parser.default_section:
            self.parser.add_section(section)
        changed = self.parser.get(section, option, fallback=None) != text
        self.parser.set(section, option, text)
        return changed

    def delete(self, key: str) -> bool:
        section, option = self._split(key)
        return self.parser.has_section(section) and self.parser.remove_option(section, option)

    def text(self) -> str:
        out = io.StringIO()
        self.parser.write(out)
        return out.getvalue()


class _TreeFile:
    def __init__(self, text: str, fmt: str) -> None:
        self.fmt = fmt
        try:
            loaded = (yaml.safe_load(text) if fmt == "yaml" else json.loads(text)) if text.strip() else {}
        except (yaml.YAMLError, ValueError) as error:
            raise NonRetryableError(f"the file is not valid {fmt.upper()}: {error}") from None
        self.document: Any = {} if loaded is None else loaded

    def get(self, key: str) -> Any:
        return get_path(self.document, key)

    def set(self, key: str, value: Any) -> bool:
        if not isinstance(self.document, (dict, list)):
            raise NonRetryableError("the file's top level is not a mapping")
        return set_path(self.document, key, value)

    def delete(self, key: str) -> bool:
        return delete_path(self.document, key)

    def text(self) -> str:
        if self.fmt == "yaml":
            return str(yaml.safe_dump(self.document, sort_keys=False, default_flow_style=False, allow_unicode=True))
        return json.dumps(self.document, indent=2, ensure_ascii=False) + "\n"


class ConfigEdit(Node):
    name = "config/edit"
    description = "Read, set or delete keys in a YAML, JSON, INI or .env file."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["file"],
        "anyOf": [{"required": ["set"]}, {"required": ["delete"]}, {"required": ["get"]}],
        "properties": {
            "file": {"type": "string", "description": "The file, relative to the working directory."},
            "format": {"enum": ["yaml", "json", "ini", "env"], "description": "Default: from the file name."},
            "set": {"type": "object", "description": "Dotted key -> new value (for INI: section.key)."},
            "delete": {"type": "array", "items": {"type": "string"}, "default": []},
            "get": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Keys whose values become outputs."},
            "create": {"type": "boolean", "default": False, "description": "Create the file if it does not exist."},
        },
    }
    outputs = {"changed": "true if the file was rewritten", "values": "JSON object of the keys in get", "*": "each key in get, by its dotted name"}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        path = ctx.path(params["file"])
        fmt = params.get("format") or guess_format(path)
        if fmt is None:
            raise NonRetryableError(f"cannot tell the format of {params['file']!r}: set format to yaml, json, ini or env")
        if not path.exists() and not params["create"]:
            raise NonRetryableError(f"{params['file']!r} does not exist (set create: true to create it)")
        original = path.read_text() if path.exists() else ""
        try:
            document: Any = _EnvFile(original) if fmt == "env" else _IniFile(original) if fmt == "ini" else _TreeFile(original, fmt)
        except configparser.Error as error:
            raise NonRetryableError(f"{params['file']!r} is not a valid INI file: {error}") from None
        changed = False
        for key, value in (params.get("set") or {}).items():
            changed = document.set(key, value) or changed
        for key in params["delete"]:
            changed = document.delete(key) or changed
        if changed or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(document.text())
            ctx.log.system(f"updated {params['file']}")
        values = {}
        for key in params["get"]:
            value = document.get(key)
            if value is _MISSING:
                raise NonRetryableError(f"key {key!r} not found in {params['file']!r}")
            values[key] = value
        return {**string_outputs(values), "changed": "true" if changed else "false", "values": json.dumps(values, default=str)}
