"""No run can wedge, end to end: a step env that cannot be evaluated, and step
outputs too large for one NATS message, each end the run failed with the reason in seconds (they
used to leave it ``running`` forever, with the scheduler retrying the event every second)."""

from __future__ import annotations

from waterflow import Client

BAD_ENV = """
name: poison-env
jobs:
  build:
    runs-on: local
    steps:
      - env:
          KEY: deps-${{ fromJSON(inputs.meta).key }}
        run: echo "$KEY"
      - if: always()
        run: echo cleanup
inputs:
  meta: {type: string}
"""

HUGE_OUTPUT = """
name: huge-output
jobs:
  build:
    runs-on: local
    steps:
      - id: big
        run: python3 -c "print('blob=' + 'x' * 900_000)" >> "$WATERFLOW_OUTPUT"
      - run: echo never
"""


def test_an_env_expression_the_scheduler_cannot_evaluate_fails_the_step_with_the_reason(client: Client) -> None:
    run_id = client.submit(BAD_ENV, inputs={"meta": "{not json"})["id"]
    state = client.wait(run_id, timeout=30)
    assert state["status"] == "failed"
    first, cleanup = state["jobs"]["build"]["steps"]
    assert first["status"] == "failed" and "fromJSON" in first["error"], first
    assert cleanup["status"] == "succeeded"


def test_outputs_too_large_for_nats_fail_the_step_instead_of_hanging_the_run(client: Client) -> None:
    run_id = client.submit(HUGE_OUTPUT)["id"]
    state = client.wait(run_id, timeout=60)
    assert state["status"] == "failed"
    big, never = state["jobs"]["build"]["steps"]
    assert big["status"] == "failed" and "over the limit" in big["error"], big
    assert never["status"] == "skipped"
