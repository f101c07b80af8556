"""Every example workflow and every workflow in the docs compiles; the published schema is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from waterflow_common.diagnostics import format_text
from waterflow_compiler import compile_workflow
from waterflow_compiler.reuse import builtin_template_dirs, mapping_loader

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.yml")) + sorted((ROOT / "examples").rglob("*.yaml"))
_YAML_BLOCK = re.compile(r"^```ya?ml[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_TOP_LEVEL_JOBS = re.compile(r"^jobs:", re.MULTILINE)


_FILE_NAME = re.compile(r"^# file: (\S+)")


def _doc_workflows() -> tuple[list[tuple[str, str, str]], dict[str, dict[str, str]]]:
    """(where, file name, source) of every workflow in the docs, and per document the blocks that
    start with ``# file: NAME`` (files other examples of the same page call with ``uses:``)."""
    found = []
    files: dict[str, dict[str, str]] = {}
    for doc in sorted((ROOT / "docs").rglob("*.md")):
        text = doc.read_text(encoding="utf-8")
        for match in _YAML_BLOCK.finditer(text):
            block = match.group(1)
            where = f"{doc.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 2}"
            named = _FILE_NAME.match(block)
            if named:
                files.setdefault(str(doc.relative_to(ROOT)), {})[named.group(1)] = block
            if _TOP_LEVEL_JOBS.search(block):
                found.append((where, named.group(1) if named else where, block))
    return found, files


DOC_WORKFLOWS, DOC_FILES = _doc_workflows()
BUILTIN_TEMPLATES = {p.stem: p.read_text(encoding="utf-8") for d in builtin_template_dirs() for p in d.glob("*@v*.yml")}
"""The built-in library (``uses: inspect@v1``), which the CLI sends along as it sends a page's files."""


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_example_compiles_without_errors(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    plan, diagnostics = compile_workflow(source, str(path.relative_to(ROOT)))
    assert plan is not None, format_text(diagnostics, source)


@pytest.mark.parametrize(("where", "name", "source"), DOC_WORKFLOWS, ids=[w for w, _, _ in DOC_WORKFLOWS])
def test_workflow_in_docs_compiles_without_errors(where: str, name: str, source: str) -> None:
    files = {**BUILTIN_TEMPLATES, **DOC_FILES.get(where.rsplit(":", 1)[0], {})}
    plan, diagnostics = compile_workflow(source, name, workflows=mapping_loader(files))
    assert plan is not None, f"{where}:\n" + format_text(diagnostics, source)


def test_the_dsl_reference_has_workflows_to_check() -> None:
    assert any(w.startswith("docs/reference/dsl.md") for w, _, _ in DOC_WORKFLOWS)
    assert "templates/deploy.yml" in DOC_FILES["docs/reference/dsl.md"]


def test_published_schema_is_the_compilers_schema() -> None:
    published = ROOT / "docs" / "reference" / "workflow.schema.json"
    used = ROOT / "services" / "compiler" / "workflow.schema.json"
    assert published.read_text(encoding="utf-8") == used.read_text(encoding="utf-8"), (
        "docs/reference/workflow.schema.json is out of date: cp services/compiler/workflow.schema.json docs/reference/"
    )
