"""hashFiles() as GitHub computes it (docs: "Expressions" → hashFiles: the SHA-256 of the
per-file SHA-256 digests of the matching files; '' when none match; '!' excludes), and the
deferred value the scheduler leaves for the agent."""

from __future__ import annotations

import hashlib
from pathlib import Path

from waterflow_common.hashfiles import MARK, deferred, hash_files, resolve


def _expected(*files: Path) -> str:
    total = hashlib.sha256()
    for path in sorted(files):
        total.update(hashlib.sha256(path.read_bytes()).digest())
    return total.hexdigest()


def test_hash_of_matching_files_in_path_order_with_exclusions(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    lock_a = tmp_path / "a" / "deps.lock"
    lock_a.write_text("one")
    lock_b = tmp_path / "b.lock"
    lock_b.write_text("two")
    (tmp_path / "skip.lock").write_text("three")
    assert hash_files(tmp_path, ["**/*.lock", "!skip.lock"]) == _expected(lock_a, lock_b)
    assert hash_files(tmp_path, ["nothing/*"]) == ""
    assert hash_files(tmp_path, ["../*", "/etc/passwd"]) == ""  # only the workspace


def test_the_deferred_value_is_replaced_in_strings_lists_and_mappings(tmp_path: Path) -> None:
    (tmp_path / "x.lock").write_text("x")
    marker = deferred(["*.lock"])
    assert MARK in marker
    value = {"key": f"deps-{marker}", "list": [marker, "plain"], "n": 3}
    resolved = resolve(value, tmp_path)
    digest = _expected(tmp_path / "x.lock")
    assert resolved == {"key": f"deps-{digest}", "list": [digest, "plain"], "n": 3}
