"""One row per compiler rule: a small workflow, the rule it must trigger, and where."""

from __future__ import annotations

import textwrap

import pytest
from waterflow_compiler import compile_workflow
from waterflow_compiler.nodes import MINIMAL_CATALOG

OK_JOB = "    runs-on: web\n    steps:\n      - run: echo\n"

# (id, workflow, rule, line, col, severity)
CASES = [
    ("yaml-syntax", "jobs: [\n", "syntax", 2, 1, "error"),
    ("empty-file", "", "syntax", 1, 1, "error"),
    ("not-a-mapping", "- a\n", "type", 1, 1, "error"),
    ("duplicate-key", "jobs:\n  a:\n" + OK_JOB + "  a:\n" + OK_JOB, "syntax", 6, 3, "error"),
    ("unknown-top-key", "jbos: {}\njobs:\n  a:\n" + OK_JOB, "unknown-key", 1, 1, "error"),
    ("missing-jobs", "name: x\n", "missing-key", 1, 1, "error"),
    ("no-jobs", "jobs: {}\n", "empty", 1, 7, "error"),
    ("wrong-type", "jobs:\n  a:\n    runs-on: web\n    steps: {run: echo}\n", "type", 4, 12, "error"),
    ("bad-job-id", "jobs:\n  'a b':\n" + OK_JOB, "job-id", 2, 3, "error"),
    ("unknown-job", "jobs:\n  a:\n    needs: b\n" + OK_JOB, "unknown-job", 3, 12, "error"),
    ("self-cycle", "jobs:\n  a:\n    needs: [a]\n" + OK_JOB, "cycle", 3, 13, "error"),
    ("cycle", "jobs:\n  a:\n    needs: b\n" + OK_JOB + "  b:\n    needs: a\n" + OK_JOB, "cycle", 8, 12, "error"),
    ("missing-runs-on", "jobs:\n  a:\n    steps:\n      - run: echo\n", "missing-key", 2, 3, "error"),
    ("missing-steps", "jobs:\n  a:\n    runs-on: web\n", "missing-key", 2, 3, "error"),
    ("empty-steps", "jobs:\n  a:\n    runs-on: web\n    steps: []\n", "empty", 4, 5, "error"),
    ("bad-group", "jobs:\n  a:\n    runs-on: 'a b'\n    steps:\n      - run: echo\n", "invalid-value", 3, 14, "error"),
    ("step-shape", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - name: nothing\n", "step-shape", 5, 9, "error"),
    ("bad-shell", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - run: echo\n        shell: fish\n", "invalid-value", 6, 16, "error"),
    ("duplicate-step-id", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - {id: x, run: echo}\n      - {id: x, run: echo}\n", "duplicate-step-id", 6, 14, "error"),
    ("duration", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - run: echo\n        retry: {attempts: 2, max-interval: later}\n", "duration", 6, 44, "error"),
    ("node-ref", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - uses: sleep\n", "node-ref", 5, 15, "error"),
    ("unknown-node", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - uses: nap@v1\n", "unknown-node", 5, 15, "error"),
    ("node-version", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - uses: sleep@v3\n", "node-version", 5, 15, "error"),
    ("node-input-unknown", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - uses: sleep@v1\n        with:\n          seconds: 1\n          extra: 2\n", "node-input", 8, 11, "error"),
    ("node-input-type", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - uses: sleep@v1\n        with:\n          seconds: true\n", "node-input", 7, 20, "error"),
    ("matrix-empty-axis", "jobs:\n  a:\n    runs-on: web\n    strategy:\n      matrix: {os: []}\n    steps:\n      - run: echo\n", "matrix", 5, 20, "error"),
    ("matrix-key", "jobs:\n  a:\n    runs-on: web\n    strategy:\n      matrix: {os: [a]}\n    steps:\n      - run: echo ${{ matrix.o }}\n", "undefined-matrix-key", 7, 23, "error"),
    ("matrix-without-matrix", "jobs:\n  a:\n" + "    runs-on: web\n    steps:\n      - run: echo ${{ matrix.os }}\n", "unavailable-context", 5, 23, "error"),
    ("expression-syntax", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - run: echo ${{ 1 + 2 }}\n", "expression", 5, 25, "error"),
    ("expression-unterminated", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - run: echo ${{ github.sha\n", "expression", 5, 19, "error"),
    ("expression-in-block", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - run: |\n          echo one\n            echo ${{ github..sha }}\n", "expression", 7, 29, "error"),
    ("expression-in-if-without-braces", "jobs:\n  a:\n    runs-on: web\n    if: github.sha ==\n    steps:\n      - run: echo\n", "expression", 4, 22, "error"),
    ("unknown-context", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - run: echo ${{ gihtub.sha }}\n", "unknown-context", 5, 23, "error"),
    ("unavailable-context", "jobs:\n  a:\n    runs-on: ${{ env.GROUP }}\n    steps:\n      - run: echo\n", "unavailable-context", 3, 18, "error"),
    ("undefined-need", "jobs:\n  b:\n" + OK_JOB + "  a:\n    runs-on: web\n    steps:\n      - run: echo ${{ needs.b.result }}\n", "undefined-need", 9, 23, "error"),
    ("undefined-output", "jobs:\n  b:\n" + OK_JOB + "  a:\n    needs: b\n    runs-on: web\n    steps:\n      - run: echo ${{ needs.b.outputs.x }}\n", "undefined-output", 10, 23, "error"),
    ("undefined-step", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - run: echo ${{ steps.x.outputs.y }}\n", "undefined-step", 5, 23, "error"),
    ("undefined-step-property", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - {id: x, run: echo}\n      - run: echo ${{ steps.x.output }}\n", "undefined-property", 6, 23, "error"),
    ("undefined-input", "inputs: {a: {}}\njobs:\n  a:\n    runs-on: web\n    steps:\n      - run: echo\n        env: {X: '${{ inputs.b }}'}\n", "undefined-input", 7, 23, "error"),
    ("status-function-outside-if", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - run: echo ${{ failure() }}\n", "function", 5, 23, "error"),
    ("hashfiles-in-job-field", "jobs:\n  a:\n    runs-on: web\n    env: {X: '${{ hashFiles(''x'') }}'}\n    steps:\n      - run: echo\n", "function", 4, 19, "error"),
    ("expression-not-allowed", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - uses: ${{ inputs.node }}\n", "expression", 5, 15, "error"),
    ("if-always-true", "jobs:\n  a:\n    runs-on: web\n    if: ${{ true }} && false\n    steps:\n      - run: echo\n", "if-always-true", 4, 9, "warning"),
    ("untrusted-input", "inputs: {x: {}}\njobs:\n  a:\n    runs-on: web\n    steps:\n      - run: echo ${{ inputs.x }}\n", "untrusted-input-in-script", 6, 23, "warning"),
    ("untrusted-event", "jobs:\n  a:\n    runs-on: web\n    steps:\n      - run: |\n          echo ${{ github.event.issue.title }}\n", "untrusted-input-in-script", 6, 20, "warning"),
    ("unknown-trigger", "on: push\njobs:\n  a:\n" + OK_JOB, "unknown-trigger", 1, 5, "warning"),
    ("bad-cron", "on:\n  schedule:\n    - cron: 'every day'\njobs:\n  a:\n" + OK_JOB, "schedule", 3, 13, "error"),
    ("input-default-type", "inputs:\n  n: {type: number, default: x}\njobs:\n  a:\n" + OK_JOB, "input", 2, 30, "error"),
    ("choice-without-options", "inputs:\n  c: {type: choice}\njobs:\n  a:\n" + OK_JOB, "input", 2, 3, "error"),
    ("expression-in-max-parallel", "jobs:\n  a:\n    strategy:\n      max-parallel: ${{ 2 }}\n      matrix: {x: [1, 2]}\n" + OK_JOB, "not-supported", 4, 21, "error"),
    ("wrong-context-in-timeout", "jobs:\n  a:\n    timeout-minutes: ${{ steps.x.outputs.n }}\n" + OK_JOB, "unavailable-context", 3, 26, "error"),
    ("reusable-workflow-without-files", "jobs:\n  a:\n    uses: ./x.yml\n", "reusable-workflow", 3, 11, "error"),
    ("reusable-workflow-bad-reference", "jobs:\n  a:\n    uses: x.yml\n", "reusable-workflow", 3, 11, "error"),
    ("reusable-workflow-with-steps", "jobs:\n  a:\n    uses: ./x.yml\n    steps: []\n", "reusable-workflow", 4, 5, "error"),
]


@pytest.mark.parametrize(("source", "rule", "line", "col", "severity"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(source: str, rule: str, line: int, col: int, severity: str) -> None:
    plan, diagnostics = compile_workflow(source, "w.yml", nodes=MINIMAL_CATALOG)
    found = [(d.rule, d.line, d.col, d.severity) for d in diagnostics]
    assert (rule, line, col, severity) in found, found
    for diagnostic in diagnostics:
        assert diagnostic.path == "w.yml" and diagnostic.message
    assert (plan is None) == (severity == "error")


def test_every_diagnostic_of_a_broken_file_is_reported_at_once() -> None:
    source = textwrap.dedent("""\
        jobs:
          a:
            runs-on: web
            timeout-minutes: soon
            needs: ghost
            steps:
              - run: echo ${{ steps.nope.outputs.x }}
                shel: bash
    """)
    _, diagnostics = compile_workflow(source, "w.yml")
    assert {d.rule for d in diagnostics} >= {"type", "unknown-job", "undefined-step", "unknown-key"}
    assert [d.line for d in diagnostics] == sorted(d.line for d in diagnostics)


def test_every_diagnostic_has_a_key_and_most_have_a_hint() -> None:
    for _, source, *_ in CASES:
        _, diagnostics = compile_workflow(source, "w.yml", nodes=MINIMAL_CATALOG)
        for d in diagnostics:
            assert d.line >= 1 and d.col >= 1
            if d.rule not in ("syntax", "type", "missing-key") and source:
                assert d.key, d
