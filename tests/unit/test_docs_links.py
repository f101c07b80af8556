"""Relative links in the docs resolve to files that exist (and anchors to headings)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    "docs/index.md", "docs/architecture.md", "docs/deployment.md", "docs/troubleshooting.md",
    "docs/performance.md", "docs/concepts/runs.md", "docs/concepts/agents.md", "docs/reference/api.md",
    "docs/reference/cli.md", "bench/README.md",
]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page: str) -> None:
    source = ROOT / page
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", source.read_text()):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (source.parent / path_part).resolve() if path_part else source
        if not resolved.exists():
            broken.append(target)
            continue
        if anchor and resolved.suffix == ".md":
            anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", resolved.read_text(), re.M)}
            if anchor not in anchors:
                broken.append(target)
    assert not broken, f"{page}: broken links {broken}"
