"""The agent's settings: flags > environment (``WATERFLOW_*``) > ``agent.yml`` > defaults.

``agent.yml`` uses the same names as the environment variables, in lower case and without the
``WATERFLOW_`` prefix (so one table documents both)::

    nats_url: nats://nats-1:4222,nats://nats-2:4222
    nats_user: web-1
    nats_password: "..."
    agent_name: web-1
    groups: [web, prod]
    labels: {env: prod, role: web}
    work_dir: /var/lib/waterflow/work
    max_concurrent_steps: 4

The file is found through ``--config PATH`` or ``WATERFLOW_CONFIG``; a missing or malformed file
is a :class:`~waterflow_common.errors.UserError` naming the file and the bad key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml
from waterflow_common import subjects
from waterflow_common.errors import UserError
from waterflow_common.settings import AgentSettings, environment_values, parse_labels

ALIASES = {"name": "agent_name", "group": "groups", "max_concurrent": "max_concurrent_steps"}
"""Friendlier spellings accepted in agent.yml."""


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings in an agent.yml, keys normalised (``-`` -> ``_``, aliases resolved)."""
    file = Path(path).expanduser()
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise UserError(f"cannot read the agent config {file}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{file}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{file}: expected a mapping of settings (nats_url: ..., groups: [...])")
    known = {f.name for f in msgspec.structs.fields(AgentSettings)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        name = ALIASES.get(name, name)
        if name not in known:
            raise UserError(f"{file}: unknown setting {key!r}; known: {', '.join(sorted(known))}")
        values[name] = value
    if isinstance(values.get("groups"), str):
        values["groups"] = [values["groups"]]
    if isinstance(values.get("labels"), list):
        values["labels"] = parse_labels([str(v) for v in values["labels"]])
    elif isinstance(values.get("labels"), dict):
        values["labels"] = {str(k): "" if v is None else str(v) for k, v in values["labels"].items()}
    values["config"] = str(file)
    return values


def load_agent_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> AgentSettings:
    """Build AgentSettings: defaults <- agent.yml <- environment <- non-None ``flags``.

    >>> load_agent_settings({"groups": ["web"]}, environ={}).groups
    ['web']
    """
    environ = os.environ if environ is None else environ
    path = config_path or environ.get("WATERFLOW_CONFIG") or None
    values: dict[str, Any] = read_config_file(path) if path else {}
    values.update(environment_values(AgentSettings, environ))
    for key, value in (flags or {}).items():
        if value is not None and value != [] and value != {}:
            values[key] = value
    try:
        settings = msgspec.convert(values, AgentSettings, strict=False)
    except msgspec.ValidationError as error:
        raise UserError(f"invalid agent setting: {error}" + (f" (from {path} or the environment)" if path else "")) from None
    try:
        subjects.check_token(settings.agent_name, "agent name")
        for group in settings.groups:
            subjects.check_group(group)
    except ValueError as error:
        raise UserError(str(error)) from None
    if settings.max_concurrent_steps < 1:
        raise UserError("max_concurrent_steps must be at least 1")
    if settings.heartbeat_interval <= 0:
        raise UserError("heartbeat_interval must be a positive number of seconds")
    if settings.local_wait_seconds < 0:
        raise UserError("local_wait_seconds must be zero or a positive number of seconds")
    return settings


def run(flags: Mapping[str, Any] | None = None, config_path: str | None = None) -> int:
    """Run the agent in the foreground until SIGINT/SIGTERM; the exit code for the CLI."""
    import asyncio
    import sys

    from waterflow_common import log as logging_setup
    from waterflow_common.errors import WaterflowError
    from waterflow_common.runner import hide_environment, serve_until_stopped

    from .service import serve

    try:
        settings = load_agent_settings(flags, config_path=config_path)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging_setup.configure(settings.log_level, settings.log_format, service="agent")
    hide_environment()  # its credentials: not readable by the steps it runs (same user, not root)

    try:
        asyncio.run(serve_until_stopped(settings, serve))
    except WaterflowError as error:  # e.g. NATS rejected the credentials: no traceback
        print(f"error: {error}", file=sys.stderr)
        return 3
    return 0
