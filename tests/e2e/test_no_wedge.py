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


def test_a_run_announced_but_never_stored_is_created_and_run_by_the_scheduler(stack) -> None:  # type: ignore[no-untyped-def]
    """Issue #13 row 14 (ghost runs): an API killed between announcing a run (``run.created``,
    the commit point) and storing its first state used to leave it ``queued`` forever. Here the
    API's part is done by hand up to the announcement; the scheduler must create and run it."""
    import asyncio

    import nats

    from waterflow_common import subjects
    from waterflow_common.messages import RunCreated, encode
    from waterflow_common.signing import load_signer
    from waterflow_common.state import encode_plan
    from waterflow_compiler import compile_workflow

    plan, diagnostics = compile_workflow("name: ghost\njobs:\n  a:\n    runs-on: local\n    steps:\n      - run: echo not a ghost\n")
    assert plan is not None, diagnostics
    run_id = "rghost0000000001"

    async def announce() -> None:
        nc = await nats.connect(stack.nats_url)
        js = nc.jetstream()
        await (await js.key_value(subjects.PLANS_BUCKET)).create(run_id, encode_plan(plan))
        created = (await load_signer(js)).sign(RunCreated(run_id=run_id, workflow="ghost"))
        await js.publish(subjects.event(run_id, created.type), encode(created), headers={subjects.MSG_ID_HEADER: created.msg_id()})
        await nc.close()

    asyncio.run(announce())
    client = Client(stack.api_url)
    state = client.wait(run_id, timeout=60) if _exists(client, run_id) else None
    assert state is not None and state["status"] == "succeeded", state


def _exists(client: Client, run_id: str) -> bool:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.get(run_id)
            return True
        except Exception:
            time.sleep(0.2)
    return False
