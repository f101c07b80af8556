"""What the compiler puts into the plan for each DSL field (the scheduler's contract)."""

from __future__ import annotations

import textwrap

from waterflow_common.plan import Concurrency, InputSpec, Plan, RetryPolicy
from waterflow_compiler import compile_workflow
from waterflow_common.durations import parse_duration
from waterflow_compiler.graph import levels


def plan_of(source: str) -> Plan:
    plan, diagnostics = compile_workflow(textwrap.dedent(source), "w.yml")
    assert plan is not None, diagnostics
    assert not [d for d in diagnostics if d.severity == "error"]
    return plan


def test_matrix_include_exclude_follows_githubs_documented_example() -> None:
    # The example from GitHub's docs "Expanding or adding matrix configurations".
    plan = plan_of("""
        jobs:
          a:
            runs-on: web
            strategy:
              matrix:
                fruit: [apple, pear]
                animal: [cat, dog]
                include:
                  - color: green
                  - color: pink
                    animal: cat
                  - fruit: apple
                    shape: circle
                  - fruit: banana
                  - fruit: banana
                    animal: cat
            steps:
              - run: echo ${{ matrix.fruit }} ${{ matrix.color }}
    """)
    assert plan.jobs["a"].matrix == (
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    )


def test_matrix_exclude_is_a_partial_match_and_strategy_options_are_kept() -> None:
    plan = plan_of("""
        jobs:
          a:
            runs-on: web
            strategy:
              fail-fast: false
              max-parallel: 2
              matrix:
                os: [linux, mac]
                version: [1, 2]
                exclude:
                  - os: mac
                    version: 1
            steps:
              - run: echo
    """)
    job = plan.jobs["a"]
    assert job.matrix == ({"os": "linux", "version": 1}, {"os": "linux", "version": 2}, {"os": "mac", "version": 2})
    assert (job.fail_fast, job.max_parallel) == (False, 2)


def test_matrix_as_one_expression_is_left_for_run_time() -> None:
    plan = plan_of("""
        jobs:
          setup:
            runs-on: web
            outputs:
              list: ${{ steps.s.outputs.list }}
            steps:
              - id: s
                run: echo 'list=["a","b"]' >> "$WATERFLOW_OUTPUT"
          each:
            needs: setup
            runs-on: web
            strategy:
              matrix: ${{ fromJSON(needs.setup.outputs.list) }}
            steps:
              - run: echo ${{ matrix.anything }}
    """)
    assert plan.jobs["each"].matrix == ()
    assert plan.jobs["each"].matrix_expression == "${{ fromJSON(needs.setup.outputs.list) }}"
    assert plan.jobs["setup"].outputs == {"list": "${{ steps.s.outputs.list }}"}


def test_conditions_retry_timeouts_and_continue_on_error() -> None:
    plan = plan_of("""
        jobs:
          a:
            runs-on: web
            if: github.event_name == 'manual'
            timeout-minutes: 5
            continue-on-error: true
            steps:
              - run: flaky
                if: ${{ always() }}
                continue-on-error: true
                timeout-minutes: 1.5
                retry: {attempts: 4, initial-interval: 10s, backoff-coefficient: 3, max-interval: 2m}
              - run: echo
                retry: {attempts: 2}
    """)
    job = plan.jobs["a"]
    assert (job.if_, job.timeout_minutes, job.continue_on_error) == ("github.event_name == 'manual'", 5, True)
    first, second = job.steps
    assert (first.if_, first.continue_on_error, first.timeout_minutes) == ("${{ always() }}", True, 1.5)
    assert first.retry == RetryPolicy(attempts=4, initial_interval=10, backoff_coefficient=3, max_interval=120)
    assert second.retry == RetryPolicy(attempts=2)


def test_defaults_run_apply_to_run_steps_job_over_workflow() -> None:
    plan = plan_of("""
        defaults:
          run: {shell: sh, working-directory: /srv}
        jobs:
          a:
            runs-on: web
            defaults:
              run: {working-directory: /opt}
            steps:
              - run: echo
              - run: echo
                shell: python
                working-directory: /tmp
              - uses: sleep@v1
                with: {seconds: 1}
          b:
            runs-on: web
            steps:
              - run: echo
    """)
    a, b = plan.jobs["a"], plan.jobs["b"]
    assert [(s.shell, s.working_directory) for s in a.steps] == [("sh", "/opt"), ("python", "/tmp"), (None, None)]
    assert (b.steps[0].shell, b.steps[0].working_directory) == ("sh", "/srv")
    assert a.steps[2].uses == "sleep@v1" and a.steps[2].with_ == {"seconds": 1}


def test_inputs_vars_on_concurrency_and_env() -> None:
    plan = plan_of("""
        name: deploy
        on:
          manual:
          schedule:
            - cron: "30 2 * * 1-5"
        inputs:
          environment: {type: choice, options: [staging, production], default: staging, required: true}
          dry: {type: boolean, default: false, description: only print}
        vars: {region: eu}
        concurrency:
          group: deploy-${{ inputs.environment }}
          cancel-in-progress: true
        env: {DEBUG: true, COUNT: 3}
        timeout-minutes: 30
        jobs:
          a:
            runs-on: web
            env:
              WHO: ${{ inputs.environment }}
            steps:
              - run: echo "$WHO"
    """)
    assert plan.name == "deploy"
    assert plan.inputs == {
        "environment": InputSpec(type="choice", options=("staging", "production"), default="staging", required=True),
        "dry": InputSpec(type="boolean", default=False, description="only print"),
    }
    assert plan.vars == {"region": "eu"}
    assert plan.on == {"manual": None, "schedule": [{"cron": "30 2 * * 1-5"}]}
    assert plan.concurrency == Concurrency(group="deploy-${{ inputs.environment }}", cancel_in_progress=True)
    assert plan.env == {"DEBUG": "true", "COUNT": "3"}
    assert plan.timeout_minutes == 30
    assert plan.jobs["a"].env == {"WHO": "${{ inputs.environment }}"}


def test_runs_on_fan_out_labels_and_expressions() -> None:
    plan = plan_of("""
        concurrency: nightly
        inputs:
          group: {default: web}
        jobs:
          everywhere:
            runs-on: {group: web, each: true, labels: [ssd, eu]}
            steps:
              - run: df -h
          chosen:
            runs-on: ${{ inputs.group }}
            steps:
              - run: echo
    """)
    assert plan.concurrency == Concurrency(group="nightly")
    job = plan.jobs["everywhere"]
    assert (job.runs_on, job.each, job.labels) == ("web", True, ("ssd", "eu"))
    assert plan.jobs["chosen"].runs_on == "${{ inputs.group }}"


def test_jobs_are_in_topological_order_and_levels() -> None:
    plan = plan_of("""
        jobs:
          deploy:
            needs: [build, test]
            runs-on: web
            steps: [{run: echo}]
          test:
            needs: build
            runs-on: web
            steps: [{run: echo}]
          build:
            runs-on: web
            steps: [{run: echo}]
          lint:
            runs-on: web
            steps: [{run: echo}]
    """)
    assert list(plan.jobs) == ["build", "test", "deploy", "lint"]
    assert levels({j: plan.jobs[j].needs for j in plan.jobs}) == [["build", "lint"], ["test"], ["deploy"]]


def test_long_chains_of_needs_compile_without_recursion() -> None:
    # 2000 jobs: twice Python's recursion limit, still under the plan size limit (MAX_PLAN_BYTES)
    jobs = "".join(f"  j{i}:\n    runs-on: web\n" + (f"    needs: j{i - 1}\n" if i else "") + "    steps: [{run: echo}]\n" for i in range(2000))
    plan, diagnostics = compile_workflow("jobs:\n" + jobs, "w.yml")
    assert plan is not None and list(plan.jobs)[-1] == "j1999", diagnostics[:3]


def test_durations() -> None:
    assert [parse_duration(v) for v in (10, 1.5, "10", "10s", "2m", "1h30m", "500ms", "1d")] == [10, 1.5, 10, 10, 120, 5400, 0.5, 86400]
    assert [parse_duration(v) for v in ("", "soon", "10x", -1, True, None, "m")] == [None] * 7


def test_a_custom_node_catalog_validates_with_against_its_schema() -> None:
    catalog = {"http": {"v1": {"type": "object", "required": ["url"], "additionalProperties": False,
                               "properties": {"url": {"type": "string"}, "method": {"enum": ["GET", "POST"]}}}}}
    source = "jobs:\n  a:\n    runs-on: web\n    steps:\n      - uses: http@v1\n        with: {url: 'https://x', method: PUT}\n"
    plan, diagnostics = compile_workflow(source, "w.yml", nodes=catalog)
    assert plan is None and [(d.rule, d.line, d.col) for d in diagnostics] == [("node-input", 6, 42)]
    ok, diagnostics = compile_workflow(source.replace("PUT", "POST"), "w.yml", nodes=catalog)
    assert ok is not None and not diagnostics


def test_every_public_name_imports() -> None:
    import waterflow_compiler

    for name in waterflow_compiler.__all__:
        assert getattr(waterflow_compiler, name) is not None


def test_the_plan_records_the_secrets_its_expressions_read() -> None:
    plan, diagnostics = compile_workflow(
        "name: s\njobs:\n  a:\n    runs-on: g\n    env:\n      T: ${{ secrets.TOKEN }}\n    steps:\n"
        "      - run: echo ${{ secrets['DB_PASS'] }} and secrets.NOT_AN_EXPRESSION\n"
        "      - uses: http@v1\n        with: {url: \"https://x/${{ secrets.URL_PART }}\"}\n", "s.yml")
    assert plan is not None, diagnostics
    assert plan.secrets == ("DB_PASS", "TOKEN", "URL_PART")
