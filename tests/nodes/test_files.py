"""file/upload and file/download through a real JetStream Object Store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from nodetest import NodeRunner
from waterflow_common import subjects


@pytest.fixture
def agents(run_node: NodeRunner, js: Any, tmp_path: Path) -> tuple[NodeRunner, NodeRunner]:
    """Two 'agents' of one run: separate workspaces sharing the Object Store."""
    run_node.js = js
    other_ws = tmp_path / "agent2" / "rtest" / "job"
    other_ws.mkdir(parents=True)
    other = NodeRunner(workspace=other_ws, temp_dir=tmp_path / "agent2" / "_temp", registry=run_node.registry,
                       env=run_node.env, js=js)
    return run_node, other


async def test_upload_then_download_on_another_agent(agents: tuple[NodeRunner, NodeRunner], js: Any) -> None:
    first, second = agents
    payload = os.urandom(300_000)
    script = first.workspace / "dist" / "deploy.sh"
    script.parent.mkdir()
    script.write_bytes(payload)
    script.chmod(0o750)
    up = await first("file/upload@v1", {"path": "dist/deploy.sh"})
    assert up.result.succeeded, up.result.error
    digest = hashlib.sha256(payload).hexdigest()
    assert up.result.outputs == {"object": "rtest/deploy.sh", "size": "300000", "sha256": digest}
    assert any("uploaded 300000/300000 bytes (100%)" in text for _, text in up.lines)
    store = await js.object_store(subjects.FILES_BUCKET)
    assert (await store.get_info("rtest/deploy.sh")).size == 300000

    down = await second("file/download@v1", {"name": "deploy.sh", "path": "bin/", "sha256": digest})
    assert down.result.succeeded, down.result.error
    target = second.workspace / "bin" / "deploy.sh"
    assert down.result.outputs == {"path": str(target), "size": "300000", "sha256": digest}
    assert target.read_bytes() == payload
    assert target.stat().st_mode & 0o777 == 0o750
    assert not list(target.parent.glob(".*part*"))


async def test_explicit_mode_object_name_and_overwrite(agents: tuple[NodeRunner, NodeRunner]) -> None:
    first, second = agents
    (first.workspace / "a.txt").write_text("shared")
    up = await first("file/upload", {"path": "a.txt", "object": "global/config/a.txt"})
    assert up.result.outputs["object"] == "global/config/a.txt"
    down = await second("file/download", {"object": "global/config/a.txt", "path": "conf.txt", "mode": "0600"})
    assert down.result.succeeded, down.result.error
    assert (second.workspace / "conf.txt").stat().st_mode & 0o777 == 0o600
    again = await second("file/download", {"object": "global/config/a.txt", "path": "conf.txt", "overwrite": False})
    assert not again.result.retryable and "overwrite is false" in (again.result.error or "")


async def test_checksum_mismatch_and_missing_object(agents: tuple[NodeRunner, NodeRunner]) -> None:
    first, second = agents
    (first.workspace / "b.bin").write_bytes(b"content")
    await first("file/upload", {"path": "b.bin"})
    wrong = await second("file/download", {"name": "b.bin", "sha256": "0" * 64})
    assert wrong.result.retryable and "differs from the expected" in (wrong.result.error or "")
    assert not (second.workspace / "b.bin").exists()
    missing = await second("file/download", {"name": "nope.bin"})
    assert not missing.result.retryable and "no file 'rtest/nope.bin'" in (missing.result.error or "")


async def test_size_limits(agents: tuple[NodeRunner, NodeRunner]) -> None:
    first, second = agents
    (first.workspace / "c.bin").write_bytes(b"x" * 1000)
    too_big = await first("file/upload", {"path": "c.bin", "max-size": 999})
    assert not too_big.result.retryable and "more than max-size 999" in (too_big.result.error or "")
    await first("file/upload", {"path": "c.bin"})
    down = await second("file/download", {"name": "c.bin", "max-size": 10})
    assert not down.result.retryable and "more than max-size 10" in (down.result.error or "")


async def test_no_path_traversal(agents: tuple[NodeRunner, NodeRunner], tmp_path: Path) -> None:
    first, second = agents
    secret = tmp_path / "outside.txt"
    secret.write_text("not yours")
    up = await first("file/upload", {"path": "../../../outside.txt"})
    assert not up.result.retryable and "outside the allowed directories" in (up.result.error or "")
    (first.workspace / "link").symlink_to(secret)
    up = await first("file/upload", {"path": "link"})
    assert "outside the allowed directories" in (up.result.error or "")
    (first.workspace / "d.txt").write_text("d")
    await first("file/upload", {"path": "d.txt"})
    down = await second("file/download", {"name": "d.txt", "path": "../../../../tmp/escaped.txt"})
    assert "outside the allowed directories" in (down.result.error or "")
    bad_name = await second("file/download", {"name": "../other-run/d.txt"})
    assert not bad_name.result.retryable


async def test_without_nats_it_says_so(run_node: NodeRunner) -> None:
    (run_node.workspace / "e.txt").write_text("e")
    step = await run_node("file/upload", {"path": "e.txt"})
    assert not step.result.retryable and "needs the agent's NATS connection" in (step.result.error or "")
