"""Golden files of compiler diagnostics: ``cases/NAME.yml`` beside ``cases/NAME.out``.

Regenerate after an intended change with ``WATERFLOW_UPDATE_GOLDEN=1 pytest tests/compiler``
(or ``python -m tests.compiler.golden``) and review the diff.
"""

from __future__ import annotations

from pathlib import Path

from waterflow_common.diagnostics import format_text
from waterflow_compiler import compile_workflow
from waterflow_compiler.nodes import MINIMAL_CATALOG
from waterflow_compiler.reuse import mapping_loader

CASES = Path(__file__).parent / "cases"


def render(case: Path) -> str:
    """What ``waterflow validate`` prints for a case, plus whether a plan was produced."""
    source = case.read_text(encoding="utf-8")
    called = {p.relative_to(CASES).as_posix(): p.read_text(encoding="utf-8") for p in CASES.glob("*/*.yml")}
    plan, diagnostics = compile_workflow(source, case.name, nodes=MINIMAL_CATALOG, workflows=mapping_loader(called))
    sources = {case.name: source, **called}
    text = "\n".join(format_text([d for d in diagnostics if d.path == path], sources.get(path))
                     for path in dict.fromkeys(d.path for d in diagnostics))
    status = "plan: ok" if plan is not None else "plan: none"
    return (text + "\n" if text else "") + status + "\n"


if __name__ == "__main__":
    for case in sorted(CASES.glob("*.yml")):
        case.with_suffix(".out").write_text(render(case), encoding="utf-8")
        print(f"wrote {case.with_suffix('.out').name}")
