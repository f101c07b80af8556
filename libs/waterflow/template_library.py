"""The template library: reusable workflows called as ``uses: name@v1``, found where the compiler
finds them (:func:`waterflow_compiler.reuse.template_dirs`: ``WATERFLOW_TEMPLATE_PATH``, then
``templates/`` next to the workflow, then the built-in library shipped in
``libs/waterflow/templates``), described for ``waterflow template list|show`` and turned into a
workflow to edit by ``waterflow template init``.

A template is an ordinary workflow file named ``<name>@<version>.yml`` (or ``<name>/<version>.yml``)
with ``inputs`` and ``outputs``; its description is the comment at the top of the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import msgspec
import yaml

from waterflow_common.errors import UserError

_FILE = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*)@(?P<version>v\d+(?:\.\d+)*)\.ya?ml$")
_VERSION_FILE = re.compile(r"^(?P<version>v\d+(?:\.\d+)*)\.ya?ml$")


class TemplateInput(msgspec.Struct, frozen=True, kw_only=True):
    """One input of a template (what ``with:`` fills)."""

    name: str
    type: str = "string"
    required: bool = False
    default: Any = None
    description: str = ""
    options: list[str] | None = None


class TemplateInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A template of the library, as ``waterflow template list|show -o json`` prints it."""

    reference: str
    """What a job writes after ``uses:`` (``inspect@v1``)."""
    name: str
    version: str
    title: str
    """The description's first words (before its first colon): what the list shows."""
    description: str
    origin: str
    """``built-in``, ``WATERFLOW_TEMPLATE_PATH`` or ``templates/`` (next to the workflow)."""
    path: str
    inputs: list[TemplateInput] = []
    outputs: list[str] = []


def _origin(directory: Path, env_dirs: list[Path], builtin: list[Path]) -> str:
    if directory in builtin:
        return "built-in"
    return "WATERFLOW_TEMPLATE_PATH" if directory in env_dirs else "templates/"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version[1:].split("."))


def describe(path: Path, name: str, version: str, origin: str) -> TemplateInfo:
    """A template file's description (its leading comment), inputs and outputs."""
    text = path.read_text(encoding="utf-8")
    comment: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        document = None
    document = document if isinstance(document, dict) else {}
    inputs = []
    for input_name, spec in (document.get("inputs") or {}).items() if isinstance(document.get("inputs"), dict) else ():
        spec = spec if isinstance(spec, dict) else {}
        inputs.append(TemplateInput(
            name=str(input_name), type=str(spec.get("type", "string")), required=bool(spec.get("required", False)),
            default=spec.get("default"), description=str(spec.get("description") or ""),
            options=[str(o) for o in spec["options"]] if isinstance(spec.get("options"), list) else None,
        ))
    outputs = document.get("outputs")
    description = " ".join(c for c in comment if c)
    head = description.split(". ", 1)[0]
    return TemplateInfo(
        reference=f"{name}@{version}", name=name, version=version, title=head.split(": ", 1)[0], description=description,
        origin=origin, path=str(path), inputs=inputs, outputs=[str(o) for o in outputs] if isinstance(outputs, dict) else [],
    )


def find_templates(workflow_dir: Path | None = None, environ: dict[str, str] | None = None) -> list[TemplateInfo]:
    """Every template a workflow in ``workflow_dir`` (default: the current directory) can call,
    sorted by name then version; where two directories hold the same ``name@version``, the one
    the compiler would load (the first in the search order) is listed."""
    from waterflow_compiler.reuse import builtin_template_dirs, template_dirs

    environ = dict(os.environ) if environ is None else environ
    base = workflow_dir or Path.cwd()
    dirs = template_dirs(str(base / "workflow.yml"), environ)
    env_dirs = [Path(p) for p in environ.get("WATERFLOW_TEMPLATE_PATH", "").split(os.pathsep) if p]
    builtin = builtin_template_dirs()
    found: dict[str, TemplateInfo] = {}
    for directory in dirs:
        if not directory.is_dir():
            continue
        origin = _origin(directory, env_dirs, builtin)
        candidates: list[tuple[Path, str, str]] = []
        for entry in sorted(directory.iterdir()):
            match = _FILE.match(entry.name)
            if match and entry.is_file():
                candidates.append((entry, match["name"], match["version"]))
            elif entry.is_dir():
                for inner in sorted(entry.iterdir()):
                    version = _VERSION_FILE.match(inner.name)
                    if version and inner.is_file():
                        candidates.append((inner, entry.name, version["version"]))
        for path, name, version in candidates:
            if f"{name}@{version}" not in found:
                found[f"{name}@{version}"] = describe(path, name, version, origin)
    return sorted(found.values(), key=lambda t: (t.name, _version_key(t.version)))


def get_template(reference: str, workflow_dir: Path | None = None) -> TemplateInfo:
    """``name@version``, or ``name`` for its latest version; a one-line error when there is none."""
    templates = find_templates(workflow_dir)
    name, _, version = reference.partition("@")
    matching = [t for t in templates if t.name == name and (not version or t.version == version)]
    if not matching:
        known = ", ".join(sorted({t.reference for t in templates})) or "none"
        raise UserError(f"no template {reference!r} (templates: {known}; see `waterflow template list`)")
    return matching[-1]


_PLACEHOLDER = {"string": "CHANGE-ME", "number": 0, "boolean": False}


def caller_workflow(template: TemplateInfo, values: dict[str, str] | None = None) -> str:
    """A workflow that calls ``template``, to edit: every input listed with its description; a
    required one without a value gets a placeholder (``CHANGE-ME``), an optional one is
    commented out with its default."""
    values = values or {}
    unknown = sorted(set(values) - {i.name for i in template.inputs})
    if unknown:
        raise UserError(f"template {template.reference} has no input {unknown[0]!r} "
                        f"(inputs: {', '.join(i.name for i in template.inputs) or 'none'})")
    job_id = re.sub(r"[^A-Za-z0-9_-]", "-", template.name)
    lines = [f"# Calls the template {template.reference} ({template.origin}: {template.path}).",
             "# Fill in the inputs, then: waterflow validate FILE && waterflow run FILE",
             f"name: {job_id}", "jobs:", f"  {job_id}:", f"    uses: {template.reference}"]
    if template.inputs:
        lines.append("    with:")
    for spec in template.inputs:
        note = f"  # {'required: ' if spec.required else ''}{spec.description}".rstrip() if spec.description or spec.required else ""
        if spec.name in values:
            lines.append(f"      {spec.name}: {_yaml_scalar(values[spec.name])}{note}")
        elif spec.required:
            placeholder = spec.options[0] if spec.options else _PLACEHOLDER.get(spec.type, "CHANGE-ME")
            lines.append(f"      {spec.name}: {_yaml_scalar(placeholder)}{note}")
        else:
            lines.append(f"      # {spec.name}: {_yaml_scalar(spec.default)}{note}")
    if template.outputs:
        lines.append(f"# Outputs, for a job that needs {job_id}: "
                     + ", ".join(f"${{{{ needs.{job_id}.outputs.{o} }}}}" for o in template.outputs))
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").removesuffix("...").strip()


def write_new(path: Path, text: str, force: bool = False) -> None:
    """Write ``text`` to ``path``, never over an existing file unless ``force``."""
    if path.exists() and not force:
        raise UserError(f"{path} exists; choose another file or add --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
