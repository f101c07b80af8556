"""Every example workflow and every workflow in the docs compiles; the published schema is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from waterflow_common.diagnostics import format_text
from waterflow_compiler import compile_workflow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.yml")) + sorted((ROOT / "examples").rglob("*.yaml"))
_YAML_BLOCK = re.compile(r"^```ya?ml[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_TOP_LEVEL_JOBS = re.compile(r"^jobs:", re.MULTILINE)


def _doc_workflows() -> list[tuple[str, str]]:
    found = []
    for doc in sorted((ROOT / "docs").rglob("*.md")):
        text = doc.read_text(encoding="utf-8")
        for match in _YAML_BLOCK.finditer(text):
            block = match.group(1)
            if _TOP_LEVEL_JOBS.search(block):
                line = text.count("\n", 0, match.start()) + 2
                found.append((f"{doc.relative_to(ROOT)}:{line}", block))
    return found


DOC_WORKFLOWS = _doc_workflows()


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_example_compiles_without_errors(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    plan, diagnostics = compile_workflow(source, str(path.relative_to(ROOT)))
    assert plan is not None, format_text(diagnostics, source)


@pytest.mark.parametrize(("where", "source"), DOC_WORKFLOWS, ids=[w for w, _ in DOC_WORKFLOWS])
def test_workflow_in_docs_compiles_without_errors(where: str, source: str) -> None:
    plan, diagnostics = compile_workflow(source, where)
    assert plan is not None, format_text(diagnostics, source)


def test_the_dsl_reference_has_workflows_to_check() -> None:
    assert any(w.startswith("docs/reference/dsl.md") for w, _ in DOC_WORKFLOWS)


def test_published_schema_is_the_compilers_schema() -> None:
    published = ROOT / "docs" / "reference" / "workflow.schema.json"
    used = ROOT / "services" / "compiler" / "workflow.schema.json"
    assert published.read_text(encoding="utf-8") == used.read_text(encoding="utf-8"), (
        "docs/reference/workflow.schema.json is out of date: cp services/compiler/workflow.schema.json docs/reference/"
    )
