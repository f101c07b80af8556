"""Reusable workflows and templates: ``uses:`` jobs inlined at compile time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import msgspec

from waterflow_common.expressions import evaluate_condition, evaluate_value
from waterflow_common.messages import CompileReply, CompileRequest, encode
from waterflow_common.state import decode_plan
from waterflow_compiler import compile_workflow
from waterflow_compiler.reuse import FileWorkflows, builtin_template_dirs, collect, mapping_loader, template_dirs
from waterflow_compiler.service import handle

CALLER = textwrap.dedent("""\
    inputs:
      env: {type: choice, options: [staging, production], default: staging}
    jobs:
      build:
        runs-on: builders
        outputs:
          version: ${{ steps.v.outputs.version }}
        steps:
          - id: v
            run: echo "version=1.2.3" >> "$WATERFLOW_OUTPUT"
      deploy:
        needs: build
        if: ${{ inputs.env != 'none' }}
        uses: ./templates/deploy.yml
        with:
          environment: ${{ inputs.env }}
          version: v${{ needs.build.outputs.version }}
      notify:
        needs: deploy
        runs-on: local
        steps:
          - env:
              URL: ${{ needs.deploy.outputs.url }}
              RESULT: ${{ needs.deploy.result }}
            run: echo "$URL $RESULT"
""")
CALLED = textwrap.dedent("""\
    inputs:
      environment: {type: string, required: true}
      version: {type: string}
      replicas: {type: number, default: 2}
    outputs:
      url:
        value: ${{ jobs.rollout.outputs.url }}
    env:
      TARGET: ${{ inputs.environment }}
    jobs:
      prepare:
        runs-on: ${{ inputs.environment }}
        steps:
          - run: echo "preparing $TARGET"
      rollout:
        needs: prepare
        runs-on: web
        outputs:
          url: https://${{ inputs.environment }}.example/${{ needs.prepare.result }}
        steps:
          - env:
              VERSION: ${{ inputs.version }}
              REPLICAS: ${{ inputs.replicas }}
            run: ./rollout.sh "$VERSION" "$REPLICAS"
""")
FILES = {"templates/deploy.yml": CALLED}


def test_called_jobs_are_inlined_with_renamed_ids_needs_and_names() -> None:
    plan, diagnostics = compile_workflow(CALLER, "main.yml", workflows=mapping_loader(FILES))
    assert plan is not None, diagnostics
    assert list(plan.jobs) == ["build", "deploy-prepare", "deploy-rollout", "notify"]
    prepare, rollout, notify = plan.jobs["deploy-prepare"], plan.jobs["deploy-rollout"], plan.jobs["notify"]
    assert prepare.needs == ("build",) and rollout.needs == ("build", "deploy-prepare")
    assert notify.needs == ("deploy-prepare", "deploy-rollout")
    assert prepare.name == "deploy / prepare"
    assert prepare.if_ == rollout.if_ == "inputs.env != 'none'"


def test_rewritten_expressions_evaluate_to_what_the_caller_passed() -> None:
    plan, _ = compile_workflow(CALLER, "main.yml", workflows=mapping_loader(FILES))
    assert plan is not None
    contexts = {
        "inputs": {"env": "production"},
        "needs": {"build": {"outputs": {"version": "1.2.3"}, "result": "success"},
                  "deploy-prepare": {"outputs": {}, "result": "success"},
                  "deploy-rollout": {"outputs": {"url": "https://production.example/success"}, "result": "success"}},
    }
    prepare, rollout, notify = plan.jobs["deploy-prepare"], plan.jobs["deploy-rollout"], plan.jobs["notify"]
    assert evaluate_value(prepare.runs_on, contexts) == "production"
    assert evaluate_value(prepare.env["TARGET"], contexts) == "production"
    step_env = rollout.steps[0].env
    assert evaluate_value(step_env["VERSION"], contexts) == "v1.2.3"
    assert evaluate_value(step_env["REPLICAS"], contexts) == 2
    assert evaluate_value(rollout.outputs["url"], contexts) == "https://production.example/success"
    assert evaluate_value(notify.steps[0].env["URL"], contexts) == "https://production.example/success"
    assert evaluate_value(notify.steps[0].env["RESULT"], contexts) == "success"
    contexts["needs"]["deploy-rollout"]["result"] = "failure"
    assert evaluate_value(notify.steps[0].env["RESULT"], contexts) == "failure"
    assert evaluate_condition(prepare.if_, contexts) is True
    assert evaluate_condition(prepare.if_, {**contexts, "inputs": {"env": "none"}}) is False


def test_mistakes_in_the_call_are_reported_at_the_caller() -> None:
    source = CALLER.replace("version: v${{ needs.build.outputs.version }}", "versoin: 1\n      replicas: many")
    source = source.replace("environment: ${{ inputs.env }}", "region: eu")
    plan, diagnostics = compile_workflow(source, "main.yml", workflows=mapping_loader(FILES))
    assert plan is None
    found = {(d.path, d.rule, d.message) for d in diagnostics}
    assert ("main.yml", "reusable-workflow", "templates/deploy.yml has no input 'versoin'") in found
    assert ("main.yml", "reusable-workflow", "templates/deploy.yml requires the input 'environment'") in found
    assert ("main.yml", "reusable-workflow", "input 'replicas' of templates/deploy.yml is a number, found 'many'") in found
    hint = next(d.hint for d in diagnostics if "versoin" in d.message)
    assert hint == "did you mean 'version'?"


def test_mistakes_in_the_called_file_are_reported_in_that_file() -> None:
    broken = CALLED.replace("needs.prepare.result", "needs.prepar.result")
    plan, diagnostics = compile_workflow(CALLER, "main.yml", workflows=mapping_loader({"templates/deploy.yml": broken}))
    assert plan is None
    assert [(d.path, d.line, d.rule) for d in diagnostics] == [
        ("main.yml", 14, "reusable-workflow"),
        ("templates/deploy.yml", 19, "undefined-need"),
    ]


def test_missing_files_cycles_and_clashes() -> None:
    _, diagnostics = compile_workflow(CALLER, "main.yml", workflows=mapping_loader({}))
    assert any(d.rule == "reusable-workflow" and "not found" in d.message for d in diagnostics)
    selfish = "jobs:\n  again:\n    uses: ./main.yml\n"
    _, diagnostics = compile_workflow(selfish, "main.yml", workflows=mapping_loader({"main.yml": selfish}))
    assert any("cycle: main.yml -> main.yml" in d.message for d in diagnostics)
    clash = CALLER + "  deploy-prepare:\n    runs-on: web\n    steps:\n      - run: echo\n"
    _, diagnostics = compile_workflow(clash, "main.yml", workflows=mapping_loader(FILES))
    assert any("clashes" in d.message for d in diagnostics)


def test_outputs_of_a_called_workflow_are_checked_in_the_caller() -> None:
    source = CALLER.replace("needs.deploy.outputs.url", "needs.deploy.outputs.link")
    _, diagnostics = compile_workflow(source, "main.yml", workflows=mapping_loader(FILES))
    assert [(d.rule, d.hint) for d in diagnostics] == [("undefined-output", "its outputs: url")]


def test_templates_and_nested_calls_from_disk(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "greet@v1.yml").write_text(
        "inputs:\n  who: {default: world}\njobs:\n  hello:\n    uses: ./parts/say.yml\n    with: {text: 'hello ${{ inputs.who }}'}\n")
    (tmp_path / "lib" / "parts").mkdir()
    (tmp_path / "lib" / "parts" / "say.yml").write_text(
        "inputs:\n  text: {required: true}\njobs:\n  echo:\n    runs-on: local\n    steps:\n      - env: {TEXT: '${{ inputs.text }}'}\n        run: echo \"$TEXT\"\n")
    main = tmp_path / "main.yml"
    main.write_text("jobs:\n  greet:\n    uses: greet@v1\n    with: {who: ops}\n")
    loader = FileWorkflows([tmp_path / "lib"])
    plan, diagnostics = compile_workflow(main.read_text(), str(main), workflows=loader)
    assert plan is not None, diagnostics
    job = plan.jobs["greet-hello-echo"]
    assert evaluate_value(job.steps[0].env["TEXT"], {}) == "hello ops"
    assert set(loader.loaded) == {"greet@v1", "greet@v1/parts/say.yml"}
    assert template_dirs(str(main), {"WATERFLOW_TEMPLATE_PATH": "/a"}) == [Path("/a"), tmp_path / "templates",
                                                                          *builtin_template_dirs()]


def test_collect_gathers_every_called_file_for_submission(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "deploy.yml").write_text(CALLED)
    (tmp_path / "main.yml").write_text(CALLER)
    path = str(tmp_path / "main.yml")
    files = collect(path, FileWorkflows())
    assert list(files) == [str(tmp_path / "templates" / "deploy.yml")]
    plan, diagnostics = compile_workflow(CALLER, path, workflows=mapping_loader(files))
    assert plan is not None, diagnostics


def test_the_compiler_service_inlines_files_sent_with_the_request() -> None:
    reply = msgspec.json.decode(encode(CompileRequest(source=CALLER, filename="main.yml", workflows=FILES)), type=CompileRequest)
    answer = handle(encode(reply))
    assert isinstance(answer, CompileReply) and answer.plan is not None, answer.diagnostics
    assert "deploy-rollout" in decode_plan(answer.plan).jobs
    without = handle(encode(CompileRequest(source=CALLER, filename="main.yml")))
    assert without.plan is None and "not found" in str(without.diagnostics)
    assert "send the called files" in str(without.diagnostics)


def test_the_compiler_service_finds_built_in_templates_by_itself_and_no_other_file(tmp_path: Path) -> None:
    """A plain Client.submit sends no files: a built-in template (package data) is still found;
    nothing else on the service's disk is ever read, whatever the reference."""
    caller = textwrap.dedent("""
        jobs:
          check:
            uses: inspect@v1
            with: {group: web}
    """)
    answer = handle(encode(CompileRequest(source=caller, filename="main.yml")))
    assert answer.plan is not None, answer.diagnostics
    assert any(job.startswith("check") for job in decode_plan(answer.plan).jobs)
    secret = tmp_path / "secret.yml"
    secret.write_text(CALLED)
    for reference in (f".{secret}", "../" * 12 + str(secret).lstrip("/"), "inspect@v1/" + "../" * 12 + str(secret).lstrip("/")):
        probe = caller.replace("inspect@v1", reference)
        refused = handle(encode(CompileRequest(source=probe, filename="main.yml")))
        assert refused.plan is None, reference
        assert "not found" in str(refused.diagnostics) or "invalid workflow reference" in str(refused.diagnostics)
