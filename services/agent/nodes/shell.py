"""``shell`` (alias ``run``) and ``script``: commands as nodes, with outputs a later step can read.

Both run through :meth:`NodeContext.run` (own process group, killed on cancel/timeout) and read
``$WATERFLOW_OUTPUT`` like a ``run:`` step, so ``echo "version=1.2" >> "$WATERFLOW_OUTPUT"``
works here too.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

from waterflow_common.errors import NonRetryableError

from ..outputs import OutputFileError, parse_output_file
from ..runner import script_suffix, shell_command
from .base import CommandFailed, Node, NodeContext

ENV_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean"]},
    "description": "Extra environment variables for the command (merged over the step env).",
}
COMMON_PROPERTIES: dict[str, Any] = {
    "env": ENV_SCHEMA,
    "working-directory": {"type": "string", "description": "Directory to run in, relative to the step's working directory."},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds before the command is killed."},
    "tail-lines": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20,
                   "description": "How many last output lines to return in the last_lines output."},
}
COMMON_OUTPUTS = {
    "exit_code": "the command's exit code",
    "last_lines": "the last output lines (stdout and stderr, masked), newline-separated",
}


async def run_command(ctx: NodeContext, argv: list[str], params: dict[str, Any], temp_stem: str) -> dict[str, str]:
    """Run ``argv`` with the common parameters; raise CommandFailed on a non-zero exit."""
    ctx.temp_dir.mkdir(parents=True, exist_ok=True)
    output_file = ctx.temp_dir / f"{temp_stem}.output"
    output_file.write_text("")
    env = {**ctx.env, **{k: _env_value(v) for k, v in params.get("env", {}).items()},
           "WATERFLOW_OUTPUT": str(output_file), "GITHUB_OUTPUT": str(output_file)}
    cwd = ctx.path(params["working-directory"]) if params.get("working-directory") else ctx.workdir
    try:
        result = await ctx.run(argv, cwd=cwd, env=env, timeout=params.get("timeout"), tail=params["tail-lines"])
        try:
            outputs = parse_output_file(output_file.read_text(errors="replace"))
        except OutputFileError as error:
            raise NonRetryableError(str(error)) from None
    finally:
        output_file.unlink(missing_ok=True)
    outputs.update(exit_code=str(result.exit_code), last_lines="\n".join(result.last_lines))
    if result.exit_code != 0:
        raise CommandFailed(f"command exited with code {result.exit_code}", exit_code=result.exit_code, outputs=outputs)
    return outputs


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Shell(Node):
    name = "shell"
    description = "Run a command or script text with a chosen shell; exit code and last lines as outputs."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["run"],
        "properties": {
            "run": {"type": "string", "description": "The command(s), as in a run: step."},
            "shell": {"type": "string", "description": "bash (default), sh, python, pwsh, or a template with {0}, e.g. 'perl {0}'."},
            **COMMON_PROPERTIES,
        },
    }
    outputs = {**COMMON_OUTPUTS, "*": "anything the command writes to $WATERFLOW_OUTPUT"}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        shell = params.get("shell")
        stem = f"{ctx.run_id or 'node'}-{ctx.job_id}-{ctx.step_index}-{ctx.attempt}-shell"
        script = ctx.temp_dir / f"{stem}{script_suffix(shell)}"
        ctx.temp_dir.mkdir(parents=True, exist_ok=True)
        script.write_text(params["run"])
        try:
            return await run_command(ctx, shell_command(shell, script), params, stem)
        finally:
            script.unlink(missing_ok=True)


class Run(Shell):
    name = "run"
    description = "Alias of shell."


INTERPRETERS = {".sh": "bash", ".bash": "bash", ".py": "python3", ".pl": "perl", ".rb": "ruby", ".js": "node", ".ps1": "pwsh"}


class Script(Node):
    name = "script"
    description = "Run a script file from the workspace, or inline text, with an interpreter and arguments."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "oneOf": [{"required": ["path"]}, {"required": ["inline"]}],
        "properties": {
            "path": {"type": "string", "description": "Script file, relative to the working directory (inside the workspace)."},
            "inline": {"type": "string", "description": "Script text (written to a temporary file)."},
            "interpreter": {"type": "string", "description": "Program that runs the script, e.g. 'python3 -u'; default from the file suffix, else bash."},
            "args": {"type": "array", "items": {"type": ["string", "number"]}, "default": [], "description": "Arguments after the script path."},
            **COMMON_PROPERTIES,
        },
    }
    outputs = {**COMMON_OUTPUTS, "*": "anything the script writes to $WATERFLOW_OUTPUT"}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        stem = f"{ctx.run_id or 'node'}-{ctx.job_id}-{ctx.step_index}-{ctx.attempt}-script"
        temp: Path | None = None
        if "path" in params:
            script = ctx.path(params["path"], must_exist=True)
            if not script.is_file():
                raise NonRetryableError(f"script {params['path']!r} is not a file")
        else:
            ctx.temp_dir.mkdir(parents=True, exist_ok=True)
            suffix = next((s for s, i in INTERPRETERS.items() if params.get("interpreter", "").startswith(i)), ".sh")
            temp = script = ctx.temp_dir / f"{stem}{suffix}"
            script.write_text(params["inline"])
        interpreter = params.get("interpreter") or INTERPRETERS.get(script.suffix) or ("bash" if shutil.which("bash") else "sh")
        argv = [*shlex.split(interpreter), str(script), *(str(a) for a in params["args"])]
        try:
            return await run_command(ctx, argv, params, stem)
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)
