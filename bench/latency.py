"""Latency: submit -> first step started, P50/P95/P99, under light and heavy load.

A probe is a one-step workflow. Its latency is measured two ways from the same run:
- ``submit_to_start``: the client's clock just before ``POST /v1/workflows`` to the ``at`` of the
  run's ``step.started`` event (written by the agent; same machine, same clock). This includes
  HTTP, compiling, storing the plan and state, scheduling, the task queue and the agent.
- ``created_to_start``: ``run.created`` to ``step.started``, both from the event history: the
  orchestration part alone.

Light load: probes one at a time, nothing else running. Heavy load: the same probes while
``--load-workflows`` workflows of ``--load-steps`` steps run on two other agents (group ``load``),
so the scheduler, NATS and both CPU cores are busy; the probe's own agent (group ``bench``) is
idle, so what is measured is the orchestrator under load, not a queue of waiting tasks.

    python bench/latency.py --probes 100
    python bench/latency.py --smoke --out /tmp/l.json
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    bench_stack,
    sequential_workflow,
    submit_all,
    summary,
    ts,
    wait_all,
    wait_for_agent,
    write_result,
)

from waterflow import Client  # noqa: E402


def probe(client: Client) -> dict[str, float]:
    submitted = time.time()
    run_id = client.submit(sequential_workflow("probe", 1))["id"]
    wait_all(client, [run_id])
    events = client.events(run_id)
    created = next(ts(e["at"]) for e in events if e["type"] == "run.created")
    started = next(ts(e["at"]) for e in events if e["type"] == "step.started")
    return {"submit_to_start_ms": (started - submitted) * 1000, "created_to_start_ms": (started - created) * 1000}


def probes(client: Client, count: int, interval: float) -> list[dict[str, float]]:
    out = []
    for _ in range(count):
        out.append(probe(client))
        time.sleep(interval)
    return out


def stats(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {key: summary([s[key] for s in samples]) for key in ("submit_to_start_ms", "created_to_start_ms")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.02, help="pause between probes (s)")
    parser.add_argument("--load-workflows", type=int, default=20)
    parser.add_argument("--load-steps", type=int, default=100)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.probes, args.load_workflows, args.load_steps = 3, 2, 10

    with bench_stack(agents=1) as stack:
        client = Client(stack.api_url)
        for name in ("load-0", "load-1"):
            stack.start_agent(name, ("load",), WATERFLOW_MAX_CONCURRENT_STEPS="4")
            wait_for_agent(stack, name)
        probe(client)  # warm-up
        light = probes(client, args.probes, args.interval)

        # Heavy: keep the load going for as long as the probes take.
        load_runs: list[str] = []
        done = threading.Event()

        def load() -> None:
            while not done.is_set():
                batch = submit_all(client, [sequential_workflow(f"load{i}", args.load_steps, group="load")
                                            for i in range(args.load_workflows)])
                load_runs.extend(r for r, _ in batch)
                wait_all(client, [r for r, _ in batch])

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(0.5)  # let the load ramp up
        heavy = probes(client, args.probes, args.interval)
        done.set()
        loader.join(timeout=600)
        load_states = wait_all(client, load_runs) if load_runs else []
        load_steps = sum(len(j["steps"]) for s in load_states for j in s["jobs"].values())
        span = (max(ts(s["finished_at"]) for s in load_states) - min(ts(s["created_at"]) for s in load_states)) if load_states else 0

    result = {
        "params": vars(args),
        "light": stats(light),
        "heavy": stats(heavy),
        "heavy_background": {"runs": len(load_runs), "steps": load_steps,
                             "steps_per_s": load_steps / span if span else float("nan")},
        "samples": {"light": light, "heavy": heavy},
    }
    write_result("latency", result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
