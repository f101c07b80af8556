"""Property tests: whatever the input, the compiler returns diagnostics and never raises."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waterflow_compiler import compile_workflow

KEYS = ["jobs", "name", "on", "inputs", "env", "vars", "defaults", "concurrency", "timeout-minutes",
        "runs-on", "needs", "if", "steps", "run", "uses", "with", "id", "strategy", "matrix", "include",
        "exclude", "outputs", "retry", "attempts", "initial-interval", "shell", "group", "each", "labels",
        "type", "options", "default", "cron", "schedule", "a", "b", "seconds"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True),
    st.sampled_from(["web", "a", "b", "sleep@v1", "sleep", "echo hi", "${{ matrix.os }}", "${{ inputs.x }}",
                     "${{ steps.a.outputs.x }}", "${{ needs.a.result }}", "${{", "}}", "${{ 1 == }}", "10s",
                     "${{ fromJSON('[1]') }}", "success()", "string", "choice", "'", ""]),
    st.text(max_size=20),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(KEYS), children, max_size=5)),
    max_leaves=30,
)
WORKFLOWS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6) | st.fixed_dictionaries(
    {"jobs": st.dictionaries(st.sampled_from(["a", "b", "c"]), st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6), max_size=3)}
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text_only_gives_diagnostics(text: str) -> None:
    plan, diagnostics = compile_workflow(text, "w.yml")
    assert plan is not None or diagnostics


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(WORKFLOWS)
def test_arbitrary_yaml_structures_only_give_diagnostics(document: dict[str, object]) -> None:
    source = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    plan, diagnostics = compile_workflow(source, "w.yml")
    assert plan is not None or diagnostics
    for diagnostic in diagnostics:
        assert diagnostic.line >= 1 and diagnostic.col >= 1 and diagnostic.message


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["jobs:", "  a:", "    runs-on: web", "    steps:", "      - run: |",
                                 "          echo ${{ x", "      - uses: sleep@v1", "        with:", "          seconds: 1",
                                 "    needs: a", "  b:", "    strategy:", "      matrix:", "        os: [a, b]",
                                 "\t", "  - x", "&a x", "*a", "? x", "key: [", "{", "---"]), max_size=25))
def test_arbitrary_line_soup_only_gives_diagnostics(lines: list[str]) -> None:
    compile_workflow("\n".join(lines), "w.yml")
