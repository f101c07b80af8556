"""docs/reference/nodes/: one page per built-in node whose parameter and output tables are
generated from the node's schema, so the docs cannot drift from the code.

Regenerate the tables after changing a node: ``python tests/nodes/test_node_docs.py --write``
(only the text between the ``<!-- generated -->`` markers changes; the rest is written by hand).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from waterflow_agent.nodes.base import Node
from waterflow_agent.nodes.builtins import BUILTIN_NODES

DOCS = ROOT / "docs" / "reference" / "nodes"
START, END = "<!-- generated: do not edit by hand -->", "<!-- end of generated -->"


def page_for(node: type[Node]) -> Path:
    return DOCS / f"{node.name.replace('/', '-')}.md"


def _type(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    for key in ("oneOf", "anyOf"):
        if key in spec:
            return " or ".join(_type(s) for s in spec[key])
    kind = spec.get("type", "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and isinstance(spec.get("items"), dict):
        return f"list of {_type(spec['items'])}"
    if kind == "object" and isinstance(spec.get("additionalProperties"), dict):
        return f"mapping of {_type(spec['additionalProperties'])}"
    return str(kind)


def tables(node: type[Node]) -> str:
    schema = node.schema
    required = set(schema.get("required", []))
    for group in ("oneOf", "anyOf"):
        alternatives = [alt.get("required", []) for alt in schema.get(group, [])]
        if alternatives:
            label = "exactly one of" if group == "oneOf" else "at least one of"
            required_note = f"Required: {label} " + ", ".join(f"`{a[0]}`" for a in alternatives if a) + "."
            break
    else:
        required_note = ""
    rows = ["| Parameter | Type | Required | Default | Description |", "|---|---|---|---|---|"]
    for key, spec in schema.get("properties", {}).items():
        default = f"`{json.dumps(spec['default'])}`" if "default" in spec else ""
        description = str(spec.get("description", "")).replace("|", "\\|")
        rows.append(f"| `{key}` | {_type(spec)} | {'yes' if key in required else ''} | {default} | {description} |")
    outputs = ["| Output | Meaning |", "|---|---|"]
    for key, meaning in node.outputs.items():
        outputs.append(f"| `{key}` | {meaning} |" if key != "*" else f"| *(any name)* | {meaning} |")
    parts = [START, "", f"`uses: {node.ref()}` — {node.description}", "", "### Parameters (`with:`)", "",
             *(rows if schema.get("properties") else ["None."]), ""]
    if required_note:
        parts += [required_note, ""]
    parts += ["### Outputs", "", *(outputs if node.outputs else ["None."]), "", END]
    return "\n".join(parts)


def render(node: type[Node], text: str) -> str:
    block = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    return block.sub(lambda _: tables(node), text, count=1)


@pytest.mark.parametrize("node", BUILTIN_NODES, ids=[n.ref() for n in BUILTIN_NODES])
def test_every_builtin_has_a_current_page(node: type[Node]) -> None:
    page = page_for(node)
    assert page.exists(), f"{page.relative_to(ROOT)} is missing"
    text = page.read_text(encoding="utf-8")
    assert START in text and END in text, f"{page.name}: the generated block markers are missing"
    assert render(node, text) == text, f"{page.name} is out of date: run `python tests/nodes/test_node_docs.py --write`"
    assert "```yaml" in text, f"{page.name}: add an example workflow"


def test_index_links_every_page() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for node in BUILTIN_NODES:
        assert f"({page_for(node).name})" in index, f"docs/reference/nodes/README.md does not link {page_for(node).name}"


GUIDE = ROOT / "docs" / "guides" / "custom-nodes.md"
EXAMPLE_PLUGIN = ROOT / "examples" / "plugins" / "semver_bump.py"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def test_custom_node_guide_shows_the_tested_example_plugin() -> None:
    blocks = _python_blocks(GUIDE.read_text(encoding="utf-8"))
    assert blocks[0] == EXAMPLE_PLUGIN.read_text(encoding="utf-8")
    assert len(blocks[0].splitlines()) < 50


def test_custom_node_guide_test_snippet_runs() -> None:
    import subprocess

    snippet = _python_blocks(GUIDE.read_text(encoding="utf-8"))[-1]
    done = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "{'version': '1.2.4', 'previous': '1.2.3'}" in done.stdout


if __name__ == "__main__" and "--write" in sys.argv:
    for node in BUILTIN_NODES:
        page = page_for(node)
        if page.exists():
            page.write_text(render(node, page.read_text(encoding="utf-8")), encoding="utf-8")
            print(f"updated {page.relative_to(ROOT)}")
        else:
            print(f"missing {page.relative_to(ROOT)}")
