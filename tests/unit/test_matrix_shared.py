"""One matrix implementation for the compiler and the scheduler: a matrix written in YAML and the
same matrix coming from ``fromJSON`` at run time give the same jobs (GitHub's include/exclude
rules, docs "Running variations of jobs in a workflow"), and size is checked before expanding."""

from __future__ import annotations

import json
import resource
from datetime import UTC, datetime

import pytest

from waterflow_common.matrix import MatrixError, from_value
from waterflow_common.messages import RunCreated
from waterflow_common.state import initial_state
from waterflow_compiler.compile import compile_workflow
from waterflow_scheduler import machine

MATRICES = [
    {"os": ["linux", "mac"], "py": [3.11, 3.12], "exclude": [{"os": "mac", "py": 3.11}], "include": [{"os": "mac", "extra": "x"}]},
    {"a": [1], "include": [{"a": 1, "b": 2}, {"a": 3}]},
    {"fruit": ["apple", "pear"], "animal": ["cat", "dog"],
     "include": [{"color": "green"}, {"color": "pink", "animal": "cat"}, {"fruit": "apple", "shape": "circle"},
                 {"fruit": "banana"}, {"fruit": "banana", "animal": "cat"}]},
    {"os": ["a", "b", "c"], "exclude": [{"os": "b"}, {"os": "c"}]},
]


def _static_and_dynamic(matrix: dict) -> tuple[list[dict], list[dict]]:
    static_src = "name: m\njobs:\n  j:\n    runs-on: g\n    strategy:\n      matrix: " + json.dumps(matrix) + "\n    steps:\n      - run: echo\n"
    plan, diagnostics = compile_workflow(static_src)
    assert plan is not None, diagnostics
    static = [dict(c) for c in plan.jobs["j"].matrix]
    dynamic_src = ("name: m\njobs:\n  j:\n    runs-on: g\n    strategy:\n      matrix: ${{ fromJSON(inputs.m) }}\n"
                   "    steps:\n      - run: echo\ninputs:\n  m: {type: string}\n")
    plan, diagnostics = compile_workflow(dynamic_src)
    assert plan is not None, diagnostics
    state = initial_state("r1", plan, datetime(2026, 1, 1, tzinfo=UTC), {"m": json.dumps(matrix)})
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="m"))
    dynamic = [state.jobs[i].matrix for i in state.jobs["j"].instances]
    return static, dynamic


@pytest.mark.parametrize("matrix", MATRICES)
def test_a_static_and_a_dynamic_matrix_give_the_same_jobs(matrix: dict) -> None:
    static, dynamic = _static_and_dynamic(matrix)
    assert static == dynamic == from_value(matrix)


def test_githubs_documented_include_example() -> None:
    jobs = from_value(MATRICES[2])
    assert jobs == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_a_huge_matrix_is_refused_before_it_is_expanded() -> None:
    huge = {f"k{i}": list(range(10)) for i in range(9)}  # 10^9 combinations in a few hundred bytes
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(MatrixError, match="1000000000 combinations"):
        from_value(huge)
    src = "name: m\njobs:\n  j:\n    runs-on: g\n    strategy:\n      matrix: " + json.dumps(huge) + "\n    steps:\n      - run: echo\n"
    plan, diagnostics = compile_workflow(src)
    assert plan is None and any("1000000000 combinations" in d.message for d in diagnostics)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: nothing was expanded


def test_expressions_inside_a_matrix_are_evaluated_when_the_job_starts() -> None:
    """GitHub evaluates ``${{ }}`` inside a matrix definition (with needs, inputs, vars) before
    expanding it: ``os: ${{ fromJSON(inputs.os) }}`` and ``{env: {key1: "${{'val'}}1"}}``."""
    source = (
        "name: m\ninputs:\n  os: {type: string}\njobs:\n  j:\n    runs-on: g\n    strategy:\n      matrix:\n"
        "        os: ${{ fromJSON(inputs.os) }}\n        a: [{env: {key1: \"${{'val'}}1\"}}]\n"
        "        exclude: [{os: skip}]\n    steps:\n      - run: echo ${{ matrix.os }} ${{ matrix.a.env.key1 }}\n"
    )
    plan, diagnostics = compile_workflow(source)
    assert plan is not None, diagnostics
    assert plan.jobs["j"].matrix == () and plan.jobs["j"].matrix_template is not None
    state = initial_state("r1", plan, datetime(2026, 1, 1, tzinfo=UTC), {"os": '["linux", "skip", "mac"]'})
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="m"))
    combos = [state.jobs[i].matrix for i in state.jobs["j"].instances]
    assert combos == [{"os": "linux", "a": {"env": {"key1": "val1"}}}, {"os": "mac", "a": {"env": {"key1": "val1"}}}]


def test_matrix_keys_may_be_expressions_and_insert_merges_a_mapping() -> None:
    source = (
        "name: m\ninputs:\n  extra: {type: string}\njobs:\n  j:\n    runs-on: g\n    strategy:\n      matrix:\n"
        "        os: [a, b]\n        ${{ insert }}: ${{ fromJSON(inputs.extra) }}\n        \"${{ 'ver' }}\": [1]\n"
        "    steps:\n      - run: echo\n"
    )
    plan, diagnostics = compile_workflow(source)
    assert plan is not None, diagnostics
    state = initial_state("r1", plan, datetime(2026, 1, 1, tzinfo=UTC), {"extra": '{"arch": ["x64"]}'})
    machine.apply(state, plan, RunCreated(run_id="r1", workflow="m"))
    combos = [state.jobs[i].matrix for i in state.jobs["j"].instances]
    assert combos == [{"os": "a", "arch": "x64", "ver": 1}, {"os": "b", "arch": "x64", "ver": 1}]
