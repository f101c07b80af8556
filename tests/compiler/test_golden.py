"""Golden tests of diagnostics output (see :mod:`tests.compiler.golden`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .golden import CASES, render

CASE_FILES = sorted(CASES.glob("*.yml"))


@pytest.mark.parametrize("case", CASE_FILES, ids=[c.stem for c in CASE_FILES])
def test_diagnostics_match_golden_file(case: Path) -> None:
    actual = render(case)
    expected_file = case.with_suffix(".out")
    if os.environ.get("WATERFLOW_UPDATE_GOLDEN") == "1":
        expected_file.write_text(actual, encoding="utf-8")
    assert expected_file.exists(), f"{expected_file.name} missing: run WATERFLOW_UPDATE_GOLDEN=1 pytest tests/compiler"
    assert actual == expected_file.read_text(encoding="utf-8")


def test_every_golden_file_has_a_case() -> None:
    orphans = [out.name for out in CASES.glob("*.out") if not out.with_suffix(".yml").exists()]
    assert not orphans
