"""checkout against a real local bare repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from nodetest import NodeRunner

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": "/tmp"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> dict[str, str]:
    """A bare repository with two commits on main, a tag on the first, and a branch."""
    bare, src = tmp_path / "origin.git", tmp_path / "src"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "init", "-q", "-b", "main", str(src))
    (src / "README").write_text("one\n")
    git(src, "add", ".")
    git(src, "commit", "-q", "-m", "one")
    first = git(src, "rev-parse", "HEAD")
    git(src, "tag", "v1.0")
    (src / "README").write_text("two\n")
    git(src, "commit", "-q", "-am", "two")
    second = git(src, "rev-parse", "HEAD")
    git(src, "checkout", "-q", "-b", "feature", first)
    (src / "FEATURE").write_text("f\n")
    git(src, "add", ".")
    git(src, "commit", "-q", "-m", "feature")
    feature = git(src, "rev-parse", "HEAD")
    git(src, "push", "-q", str(bare), "main", "feature", "v1.0")
    return {"url": str(bare), "first": first, "second": second, "feature": feature}


async def test_clone_default_branch_then_fetch_other_refs(run_node: NodeRunner, origin: dict[str, str]) -> None:
    step = await run_node("checkout@v1", {"repository": origin["url"], "path": "repo"})
    assert step.result.succeeded, step.result.error
    repo = run_node.workspace / "repo"
    assert step.result.outputs == {"commit": origin["second"], "ref": "HEAD", "path": str(repo)}
    assert (repo / "README").read_text() == "two\n"

    (repo / "untracked.tmp").write_text("junk")
    step = await run_node("checkout", {"repository": origin["url"], "path": "repo", "ref": "feature"})
    assert step.result.outputs["commit"] == origin["feature"]
    assert (repo / "FEATURE").exists() and not (repo / "untracked.tmp").exists()

    step = await run_node("checkout", {"repository": origin["url"], "path": "repo", "ref": "v1.0"})
    assert step.result.outputs["commit"] == origin["first"]
    assert not (repo / "FEATURE").exists()


async def test_checkout_by_sha_shallow_and_file_url(run_node: NodeRunner, origin: dict[str, str]) -> None:
    step = await run_node("checkout", {"repository": origin["url"], "ref": origin["first"], "path": "by-sha"})
    assert step.result.succeeded, step.result.error
    assert step.result.outputs["commit"] == origin["first"]
    step = await run_node("checkout", {"repository": f"file://{origin['url']}", "ref": "main", "depth": 1, "path": "shallow"})
    assert step.result.succeeded, step.result.error
    assert git(run_node.workspace / "shallow", "rev-list", "--count", "HEAD") == "1"


async def test_unknown_ref_and_missing_repository(run_node: NodeRunner, origin: dict[str, str], tmp_path: Path) -> None:
    step = await run_node("checkout", {"repository": origin["url"], "ref": "no-such-branch", "path": "x"})
    assert not step.result.succeeded and step.result.retryable and "git fetch failed" in (step.result.error or "")
    step = await run_node("checkout", {"repository": origin["url"], "ref": "deadbeef", "path": "y"})
    assert not step.result.retryable and "ref 'deadbeef' not found" in (step.result.error or "")
    step = await run_node("checkout", {"repository": str(tmp_path / "missing.git"), "path": "z"})
    assert not step.result.succeeded and "git fetch failed" in (step.result.error or "")


async def test_refuses_a_non_empty_directory_that_is_not_a_checkout(run_node: NodeRunner, origin: dict[str, str]) -> None:
    (run_node.workspace / "busy").mkdir()
    (run_node.workspace / "busy" / "file").write_text("x")
    step = await run_node("checkout", {"repository": origin["url"], "path": "busy"})
    assert not step.result.retryable and "not empty and not a git checkout" in (step.result.error or "")


async def test_token_is_masked(run_node: NodeRunner, origin: dict[str, str]) -> None:
    step = await run_node("checkout", {"repository": origin["url"], "path": "t", "token": "ghp_supersecret"})
    assert step.result.succeeded, step.result.error
    assert "ghp_supersecret" not in step.text
