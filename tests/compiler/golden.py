"""Golden files of compiler diagnostics: ``cases/NAME.yml`` beside ``cases/NAME.out``.

Regenerate after an intended change with ``WATERFLOW_UPDATE_GOLDEN=1 pytest tests/compiler``
(or ``python -m tests.compiler.golden``) and review the diff.
"""

from __future__ import annotations

from pathlib import Path

from waterflow_common.diagnostics import format_text
from waterflow_compiler import compile_workflow
from waterflow_compiler.nodes import MINIMAL_CATALOG

CASES = Path(__file__).parent / "cases"


def render(case: Path) -> str:
    """What ``waterflow validate`` prints for a case, plus whether a plan was produced."""
    source = case.read_text(encoding="utf-8")
    plan, diagnostics = compile_workflow(source, case.name, nodes=MINIMAL_CATALOG)
    text = format_text(diagnostics, source)
    status = "plan: ok" if plan is not None else "plan: none"
    return (text + "\n" if text else "") + status + "\n"


if __name__ == "__main__":
    for case in sorted(CASES.glob("*.yml")):
        case.with_suffix(".out").write_text(render(case), encoding="utf-8")
        print(f"wrote {case.with_suffix('.out').name}")
