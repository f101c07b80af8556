"""``checkout``: a git repository at a ref in the workspace; outputs the commit.

Clone-or-fetch: a directory that already holds a clone is fetched and reset (fast re-runs, and a
retried step does not trip over its own half-finished clone). The ref may be a branch, a tag or a
commit SHA; a SHA the server will not serve directly is found after fetching branches and tags.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from waterflow_common.errors import NonRetryableError, RetryableError

from .base import Node, NodeContext

_SHA = re.compile(r"^[0-9a-f]{7,40}$")


class Checkout(Node):
    name = "checkout"
    description = "Clone or fetch a git repository at a ref into the workspace."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["repository"],
        "properties": {
            "repository": {"type": "string", "minLength": 1, "description": "URL (https, ssh, file) or path of the repository."},
            "ref": {"type": "string", "description": "Branch, tag or commit SHA (default: the remote's default branch)."},
            "path": {"type": "string", "default": ".", "description": "Directory inside the workspace to check out into."},
            "depth": {"type": "integer", "minimum": 1, "description": "Shallow fetch of this many commits (default: full history)."},
            "clean": {"type": "boolean", "default": True, "description": "Remove untracked files from an existing checkout."},
            "token": {"type": "string", "description": "HTTPS token (use ${{ secrets.X }}); sent as a header, masked in logs."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 600},
        },
    }
    outputs = {"commit": "the full SHA checked out", "ref": "the ref asked for (or HEAD)", "path": "absolute path of the checkout"}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        dest = ctx.path(params["path"])
        repository = params["repository"]
        if "://" not in repository and not re.match(r"^[\w.-]+@[\w.-]+:", repository):
            repository = str((ctx.workdir / repository).resolve())  # a local path, relative to the workdir
        ref = params.get("ref") or "HEAD"
        options: list[str] = []
        if params.get("token"):
            ctx.mask(params["token"])
            basic = base64.b64encode(f"x-access-token:{params['token']}".encode()).decode()
            ctx.mask(basic)
            options = ["-c", f"http.extraHeader=AUTHORIZATION: basic {basic}"]
        env = {**ctx.env, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}

        async def git(*args: str, check: bool = True, quiet: bool = False) -> tuple[int, str]:
            result = await ctx.run(["git", *options, "-C", str(dest), *args], cwd=dest, env=env,
                                   timeout=params["timeout"], quiet=quiet)
            if check and result.exit_code != 0:
                detail = " | ".join(result.last_lines[-3:])
                error = RetryableError if args[0] == "fetch" else NonRetryableError
                raise error(f"git {args[0]} failed with code {result.exit_code}: {detail}")
            return result.exit_code, result.stdout.strip()

        dest.mkdir(parents=True, exist_ok=True)
        if not (dest / ".git").exists():
            if any(dest.iterdir()):
                raise NonRetryableError(f"{dest} is not empty and not a git checkout; choose another 'path'")
            await git("init", "-q")
            await git("remote", "add", "origin", repository)
        else:
            await git("remote", "set-url", "origin", repository)
        depth = [f"--depth={params['depth']}"] if params.get("depth") else []
        ctx.log.system(f"fetching {ref} from {repository}")
        code, _ = await git("fetch", "--no-tags", "--prune", *depth, "origin", ref, check=not _SHA.match(ref))
        target = "FETCH_HEAD"
        if code != 0:  # a SHA the server does not serve by itself: fetch branches and tags, then look
            await git("fetch", "--prune", *depth, "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
            code, resolved = await git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False, quiet=True)
            if code != 0:
                raise NonRetryableError(f"ref {ref!r} not found in {repository}")
            target = resolved
        await git("checkout", "-q", "--force", "--detach", target)
        if params["clean"]:
            await git("clean", "-ffdxq")
        _, commit = await git("rev-parse", "HEAD", quiet=True)
        ctx.log.system(f"checked out {commit} ({ref}) into {dest}")
        return {"commit": commit, "ref": ref, "path": str(Path(dest))}
