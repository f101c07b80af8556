"""The DSL executed end to end: needs, if, matrix, outputs between steps and jobs, env precedence, inputs."""

from __future__ import annotations

import pytest

from waterflow import ApiError, Client

WORKFLOW = """
name: dsl-features
inputs:
  target:
    type: string
    required: true
  replicas:
    type: number
    default: 2
env:
  LEVEL: workflow
  ONLY_WORKFLOW: w
jobs:
  build:
    runs-on: local
    env:
      LEVEL: job
    outputs:
      version: ${{ steps.ver.outputs.version }}
      notes: ${{ steps.ver.outputs.notes }}
    steps:
      - id: ver
        env:
          LEVEL: step
        run: |
          echo "level=$LEVEL only=$ONLY_WORKFLOW"
          echo "version=1.4.${{ inputs.replicas }}" >> "$WATERFLOW_OUTPUT"
          {
            echo "notes<<EOF"
            echo "line one"
            echo "line two"
            echo "EOF"
          } >> "$GITHUB_OUTPUT"
      - run: echo "job level is $LEVEL, version ${{ steps.ver.outputs.version }}"
  test:
    runs-on: local
    needs: build
    strategy:
      matrix:
        os: [debian, alpine]
        py: ["3.11", "3.12"]
        exclude:
          - os: alpine
            py: "3.11"
    steps:
      - run: echo "test ${{ matrix.os }}-${{ matrix.py }} of ${{ needs.build.outputs.version }}"
  deploy:
    runs-on: local
    needs: [build, test]
    if: ${{ inputs.target == 'PROD' }}
    steps:
      - env:
          VERSION: ${{ needs.build.outputs.version }}
        run: echo "deploying $VERSION to ${{ inputs.target }}"
      - if: ${{ contains(needs.build.outputs.notes, 'two') }}
        run: echo "notes mention two"
  skipped:
    runs-on: local
    needs: build
    if: ${{ inputs.target == 'staging' }}
    steps:
      - run: echo should not run
"""


def _texts(client: Client, run_id: str) -> list[str]:
    return [line["text"] for line in client.logs(run_id)]


def test_needs_if_matrix_outputs_env_and_inputs(client: Client) -> None:
    run = client.submit(WORKFLOW, "dsl.yml", inputs={"target": "prod"})
    state = client.wait(run["id"], timeout=90)
    assert state["status"] == "succeeded", state
    texts = _texts(client, run["id"])
    assert "level=step only=w" in texts  # step env wins over job and workflow env
    assert "job level is job, version 1.4.2" in texts  # default input 2, output between steps
    assert state["jobs"]["build"]["outputs"] == {"version": "1.4.2", "notes": "line one\nline two"}
    tests = sorted(t for t in texts if t.startswith("test "))
    assert tests == ["test alpine-3.12 of 1.4.2", "test debian-3.11 of 1.4.2", "test debian-3.12 of 1.4.2"]
    assert state["jobs"]["test"]["status"] == "succeeded"
    assert len(state["jobs"]["test"]["instances"]) == 3
    assert "deploying 1.4.2 to prod" in texts  # 'prod' == 'PROD': GitHub compares case-insensitively
    assert "notes mention two" in texts
    assert state["jobs"]["skipped"]["status"] == "skipped"
    assert "should not run" not in texts


def test_missing_required_input_is_rejected(client: Client) -> None:
    with pytest.raises(ApiError) as caught:
        client.submit(WORKFLOW, "dsl.yml")
    assert caught.value.status == 400
    assert "input 'target' is required" in str(caught.value)


def test_wrongly_typed_input_is_rejected(client: Client) -> None:
    with pytest.raises(ApiError) as caught:
        client.submit(WORKFLOW, "dsl.yml", inputs={"target": "x", "replicas": "many"})
    assert "input 'replicas' must be a number" in str(caught.value)


AGENT_CONTEXT = """
name: agent-context
jobs:
  where:
    runs-on: local
    steps:
      - run: test "${{ agent.name }}" = "$WATERFLOW_AGENT" && test "${{ agent.group }}" = local
      - run: test "${{ agent.os }}" = "$(uname -s | tr A-Z a-z)" && test "${{ agent.arch }}" = "$(uname -m | tr A-Z a-z)"
"""


def test_the_agent_context_names_the_agent_running_the_job_from_its_first_step(client: Client) -> None:
    state = client.wait(client.submit(AGENT_CONTEXT, "agent.yml")["id"], timeout=60)
    assert state["status"] == "succeeded", state["jobs"]["where"]["steps"]
