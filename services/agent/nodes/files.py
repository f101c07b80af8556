"""``file/upload`` and ``file/download``: files between agents (and the API) via the Object Store.

Objects live in the ``wf_files`` bucket (:data:`waterflow_common.subjects.FILES_BUCKET`) under
``<run id>/<name>`` unless a full ``object`` name is given, so two runs never see each other's
files by accident while agents of one run share them. The Object Store checks the SHA-256 digest
of every download; the nodes also report the hex SHA-256 (``sha256sum`` format) and can insist on
an expected one. Local paths are resolved inside the job workspace (``NodeContext.path``): a
``../`` or symlink escape is refused. Downloads go to a temporary file renamed into place, so a
failed transfer never leaves a half-written file under the final name.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from pathlib import Path
from typing import Any

from waterflow_common import subjects
from waterflow_common.errors import (
    InfrastructureError,
    NonRetryableError,
    RetryableError,
)

from .base import Node, NodeContext

DEFAULT_MAX_SIZE = 1024 * 1024 * 1024
PROGRESS_STEPS = 4

_NAME_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "pattern": "^[^/.][^\\s]*$", "description": "Object name inside the run's namespace (default: the file name)."},
    "object": {"type": "string", "pattern": "^[^\\s]+$", "description": "Full object name, shared across runs (instead of name)."},
    "max-size": {"type": "integer", "minimum": 0, "default": DEFAULT_MAX_SIZE, "description": "Refuse files larger than this many bytes."},
}


async def files_store(ctx: NodeContext) -> Any:
    """The ``wf_files`` Object Store, created on first use."""
    if ctx.js is None:
        raise NonRetryableError("file transfer needs the agent's NATS connection (none in this context)")
    from nats.js.api import ObjectStoreConfig, StorageType
    from nats.js.errors import BucketNotFoundError

    try:
        return await ctx.js.object_store(subjects.FILES_BUCKET)
    except BucketNotFoundError:
        pass
    try:
        return await ctx.js.create_object_store(
            subjects.FILES_BUCKET, ObjectStoreConfig(storage=StorageType.FILE, description="Waterflow file transfer"))
    except Exception:  # another agent created it meanwhile
        return await ctx.js.object_store(subjects.FILES_BUCKET)


def object_name(ctx: NodeContext, params: dict[str, Any], default: str) -> str:
    if "object" in params:
        return str(params["object"])
    name = str(params.get("name") or default)
    if ".." in Path(name).parts:
        raise NonRetryableError(f"object name {name!r} may not contain '..'")
    return f"{ctx.run_id or 'local'}/{name}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


class _Progress(io.RawIOBase):
    """A file reader that reports progress to the step log from the Object Store's thread."""

    def __init__(self, handle: io.BufferedReader, total: int, ctx: NodeContext, verb: str) -> None:
        self._handle, self._total, self._ctx, self._verb = handle, total, ctx, verb
        self._done = 0
        self._next = 1
        self._loop = asyncio.get_running_loop()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._handle.readinto(buffer)
        self._done += count or 0
        if self._total and self._done * PROGRESS_STEPS >= self._next * self._total and count:
            self._next = self._done * PROGRESS_STEPS // self._total + 1
            message = f"{self._verb} {self._done}/{self._total} bytes ({self._done * 100 // self._total}%)"
            self._loop.call_soon_threadsafe(self._ctx.log.system, message)
        return count or 0


class FileUpload(Node):
    name = "file/upload"
    description = "Upload a file from the workspace to the Object Store (for file/download on any agent)."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "not": {"required": ["name", "object"]},
        "properties": {"path": {"type": "string", "description": "File to upload, relative to the working directory."}, **_NAME_PROPERTIES},
    }
    outputs = {"object": "full object name", "size": "bytes", "sha256": "hex SHA-256 of the content"}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        source = ctx.path(params["path"], must_exist=True)
        if not source.is_file():
            raise NonRetryableError(f"{params['path']!r} is not a regular file")
        size = source.stat().st_size
        if size > params["max-size"]:
            raise NonRetryableError(f"{params['path']!r} is {size} bytes, more than max-size {params['max-size']}")
        name = object_name(ctx, params, source.name)
        store = await files_store(ctx)
        checksum = await asyncio.to_thread(sha256_file, source)
        from nats.js.api import ObjectMeta

        ctx.log.system(f"uploading {source.name} ({size} bytes) as {name}")
        try:
            with source.open("rb") as handle:
                info = await store.put(name, _Progress(handle, size, ctx, "uploaded"),  # type: ignore[arg-type]
                                       meta=ObjectMeta(name=name, headers={"Waterflow-Sha256": checksum, "Waterflow-Mode": format(source.stat().st_mode & 0o7777, "04o")}))
        except (TimeoutError, OSError) as error:
            raise RetryableError(f"upload of {name} failed: {error or type(error).__name__}") from None
        except Exception as error:
            raise RetryableError(f"upload of {name} failed: {type(error).__name__}: {error}") from None
        if info.size != size:
            raise RetryableError(f"upload of {name} stored {info.size} bytes, expected {size} (file changed during upload?)")
        return {"object": name, "size": str(size), "sha256": checksum}


class FileDownload(Node):
    name = "file/download"
    description = "Download a file from the Object Store into the workspace, verifying its checksum."
    schema = {
        "type": "object",
        "additionalProperties": False,
        "oneOf": [{"required": ["name"]}, {"required": ["object"]}],
        "properties": {
            **_NAME_PROPERTIES,
            "path": {"type": "string", "description": "Destination file, or directory ending in /, relative to the working directory (default: the object name's last part)."},
            "mode": {"type": "string", "pattern": "^0?[0-7]{3,4}$", "description": "File permissions, e.g. '0755' (default: the uploaded file's)."},
            "overwrite": {"type": "boolean", "default": True, "description": "Replace an existing file (false: fail instead)."},
            "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "Expected hex SHA-256; fail if the content differs."},
        },
    }
    outputs = {"path": "absolute path of the file written", "size": "bytes", "sha256": "hex SHA-256 of the content"}

    async def execute(self, ctx: NodeContext, params: dict[str, Any]) -> dict[str, str]:
        from nats.js.errors import DigestMismatchError, NotFoundError

        name = object_name(ctx, params, "")
        target = ctx.path(params.get("path") or Path(name).name)
        if target.is_dir() or str(params.get("path", "")).endswith("/"):
            target = ctx.path(str(target / Path(name).name))
        if target.exists() and not params["overwrite"]:
            raise NonRetryableError(f"{target} exists and overwrite is false")
        store = await files_store(ctx)
        try:
            info = await store.get_info(name)
        except NotFoundError:
            raise NonRetryableError(f"no file {name!r} in the Object Store (was it uploaded in this run?)") from None
        if info.size > params["max-size"]:
            raise NonRetryableError(f"{name} is {info.size} bytes, more than max-size {params['max-size']}")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part-{os.getpid()}")
        ctx.log.system(f"downloading {name} ({info.size} bytes) to {target}")
        try:
            with partial.open("wb") as handle:
                await store.get(name, writeinto=handle)  # type: ignore[arg-type]
            checksum = await asyncio.to_thread(sha256_file, partial)
            expected = (params.get("sha256") or (info.headers or {}).get("Waterflow-Sha256") or "").lower()
            if expected and checksum != expected:
                raise RetryableError(f"{name}: checksum {checksum} differs from the expected {expected}")
            mode = params.get("mode") or (info.headers or {}).get("Waterflow-Mode")
            if mode:
                partial.chmod(int(mode, 8))
            partial.replace(target)
        except DigestMismatchError:
            raise RetryableError(f"{name}: the content does not match the stored digest (corrupted transfer)") from None
        except (TimeoutError, OSError, InfrastructureError) as error:
            raise RetryableError(f"download of {name} failed: {error or type(error).__name__}") from None
        finally:
            partial.unlink(missing_ok=True)
        ctx.log.system(f"downloaded {name}: {info.size} bytes, sha256 {checksum}")
        return {"path": str(target), "size": str(info.size), "sha256": checksum}
