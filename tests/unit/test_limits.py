"""docs/reference/limits.md lists exactly the limits libs/waterflow_common/limits.py defines,
with their values."""

from __future__ import annotations

import re
from pathlib import Path

from waterflow_common import limits

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "limits.md"


def test_the_limits_table_matches_the_module() -> None:
    text = DOC.read_text()
    table = text[text.index("<!-- limits:begin -->"):text.index("<!-- limits:end -->")]
    documented = {name: value for name, value in re.findall(r"^\| `([A-Z_]+)` \| ([0-9.]+) \|", table, re.M)}
    defined = {name: getattr(limits, name) for name in dir(limits) if name.isupper()}
    assert set(documented) == set(defined)
    for name, value in defined.items():
        assert float(documented[name]) == float(value), name


def test_group_names_may_hold_dots_and_map_losslessly_to_tokens() -> None:
    import pytest

    from waterflow_common import subjects

    assert subjects.group_tasks("ubuntu-22.04") == "wf.tasks.group.ubuntu-22~04"
    assert subjects.group_consumer("macos.14.arm") == "group-macos~14~arm"
    for bad in ("a~b", ".lead", "trail.", "two..dots", "sp ace", "wild*", ""):
        with pytest.raises(ValueError):
            subjects.check_group(bad)
