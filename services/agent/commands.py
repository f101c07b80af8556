"""Workflow commands a step writes on its stdout, as GitHub's runner parses them.

``::name key=value,key=value::message``, with GitHub's escapes (``%25`` ``%0D`` ``%0A`` in the
message; also ``%3A`` ``%2C`` in values). What each does here:

==========================  ========================================================================
``::set-output name=N::v``  step output ``N`` (deprecated on GitHub, still in countless workflows)
``::save-state name=N::v``  kept as the step's state (there are no post steps to read it)
``::add-mask::v``           ``v`` is masked from then on: log lines, outputs, errors, annotations
``::error|warning|notice``  an annotation (``file``, ``line``, ``col``, ``endLine``, ``endColumn``,
                            ``title``), shown in ``waterflow status``, the API and the CLI
``::debug::m``              logged only when step debug is on (``ACTIONS_STEP_DEBUG`` /
                            ``WATERFLOW_STEP_DEBUG`` = ``true`` in the step's environment)
``::group::t`` / endgroup   logged as ``▸ t`` and a blank marker, so viewers can fold them
``::stop-commands::TOKEN``  no command is processed until the line ``::TOKEN::``
``::set-env`` ``::add-path``  refused, as GitHub refuses them (injection risk): use the files
                            ``$GITHUB_ENV`` and ``$GITHUB_PATH`` instead — a system line says so
==========================  ========================================================================

A processed command line is not logged (``add-mask`` above all must never be); an unknown
``::x::`` is logged as it is, as GitHub does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from waterflow_common.messages import Annotation
from waterflow_common.secrets import Masker

_COMMAND = re.compile(r"^::(?P<name>[A-Za-z-]+)(?:\s+(?P<props>[^:]*))?::(?P<message>.*)$", re.DOTALL)
ANNOTATION_LEVELS = ("error", "warning", "notice")
MAX_ANNOTATIONS = 50
"""Annotations kept per step (GitHub keeps 10 of each level per step)."""
_PROPERTY_NAMES = {"file": "file", "line": "line", "col": "col", "endline": "end_line", "endcolumn": "end_column",
                   "title": "title"}


def _unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")


@dataclass
class WorkflowCommands:
    """Reads a step's stdout lines; says what to log instead of each."""

    masker: Masker
    """Shared with the step's log: a mask added here hides the value in every later line."""
    debug: bool = False
    outputs: dict[str, str] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    annotations: list[Annotation] = field(default_factory=list)
    _stop_token: str | None = None

    def line(self, text: str) -> tuple[str, str] | None:
        """``(stream, text)`` to log for this stdout line, or None to log nothing."""
        if self._stop_token is not None:
            if text.strip() == f"::{self._stop_token}::":
                self._stop_token = None
                return None
            return ("stdout", text)
        match = _COMMAND.match(text)
        if match is None:
            return ("stdout", text)
        name = match["name"].lower()
        properties = self._properties(match["props"] or "")
        message = _unescape_data(match["message"])
        if name == "set-output" and "name" in properties:
            self.outputs[properties["name"]] = message
            return None
        if name == "save-state" and "name" in properties:
            self.state[properties["name"]] = message
            return None
        if name == "add-mask":
            self.masker.add(message.strip())
            return None
        if name in ANNOTATION_LEVELS:
            if len(self.annotations) < MAX_ANNOTATIONS:
                self.annotations.append(self._annotation(name, self.masker(message), properties))
            where = f" ({properties['file']}:{properties.get('line', '?')})" if "file" in properties else ""
            return ("system", f"{name.capitalize()}{where}: {message}")
        if name == "debug":
            return ("system", f"[debug] {message}") if self.debug else None
        if name == "group":
            return ("system", f"▸ {message}")
        if name == "endgroup":
            return ("system", "◂")
        if name == "stop-commands":
            self._stop_token = message.strip() or None
            return None
        if name in ("set-env", "add-path"):
            replacement = "$GITHUB_ENV" if name == "set-env" else "$GITHUB_PATH"
            return ("system", f"the '{name}' command is disabled (as on GitHub: it let any printed text change the "
                              f"environment); write to {replacement} instead")
        if name == "echo":
            return None
        return ("stdout", text)

    @staticmethod
    def _properties(text: str) -> dict[str, str]:
        properties: dict[str, str] = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            if sep and key.strip():
                properties[key.strip().lower()] = _unescape_property(value)
        return properties

    @staticmethod
    def _annotation(level: str, message: str, properties: dict[str, str]) -> Annotation:
        values: dict[str, object] = {}
        for key, value in properties.items():
            name = _PROPERTY_NAMES.get(key)
            if name in ("line", "col", "end_line", "end_column"):
                if value.strip().isdigit():
                    values[name] = int(value)
            elif name is not None:
                values[name] = value
        return Annotation(level=level, message=message, **values)  # type: ignore[arg-type]
