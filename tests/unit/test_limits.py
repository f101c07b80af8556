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
