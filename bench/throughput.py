"""Throughput: steps per second and per-step overhead, with 1, 4 and 16 agents.

Two shapes, each repeated:
- sequential: one workflow of N steps, one after the other (``echo hello`` each). Steps/s is
  N / (run finished - run started); the per-step overhead is, for each pair of consecutive steps,
  the time between one step's end and the next one's start (the orchestration cost alone).
- concurrent: M workflows of 10 sequential steps submitted at once. Steps/s is 10·M / (last run
  finished - first run created).

    python bench/throughput.py                       # defaults used for docs/performance.md
    python bench/throughput.py --steps 500 --workflows 200 --agents 1,4,16
    python bench/throughput.py --smoke --out /tmp/t.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    bench_stack,
    sequential_workflow,
    steps_of,
    submit_all,
    summary,
    ts,
    wait_all,
    write_result,
)

from waterflow import Client  # noqa: E402


def sequential(client: Client, steps: int) -> dict[str, float | list[float]]:
    (run_id, submitted), = submit_all(client, [sequential_workflow("seq", steps)])
    state, = wait_all(client, [run_id])
    run_steps = steps_of(state)
    gaps = [ts(b["started_at"]) - ts(a["finished_at"]) for a, b in zip(run_steps, run_steps[1:])]
    first_start = ts(run_steps[0]["started_at"])
    last_end = ts(run_steps[-1]["finished_at"])
    return {
        "steps": steps,
        "wall_s": last_end - submitted,
        "steps_per_s": steps / (last_end - first_start) if last_end > first_start else float("nan"),
        "overhead_ms_median": statistics.median(gaps) * 1000 if gaps else float("nan"),
        "overhead_ms_p95": sorted(gaps)[int(0.95 * (len(gaps) - 1))] * 1000 if gaps else float("nan"),
        "step_duration_ms_median": statistics.median(
            ts(s["finished_at"]) - ts(s["started_at"]) for s in run_steps
        ) * 1000,
    }


def concurrent(client: Client, workflows: int, steps: int = 10) -> dict[str, float]:
    start = time.time()
    submitted = submit_all(client, [sequential_workflow(f"c{i}", steps) for i in range(workflows)])
    states = wait_all(client, [r for r, _ in submitted])
    first = min(ts(s["created_at"]) for s in states)
    last = max(ts(s["finished_at"]) for s in states)
    total = workflows * steps
    return {
        "workflows": workflows,
        "steps": total,
        "wall_s": last - start,
        "steps_per_s": total / (last - first),
        "run_duration_s_median": statistics.median(ts(s["finished_at"]) - ts(s["created_at"]) for s in states),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="steps of the sequential workflow")
    parser.add_argument("--workflows", type=int, default=50, help="concurrent workflows of 10 steps")
    parser.add_argument("--agents", default="1,4,16", help="comma-separated agent counts")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script works")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.workflows, args.agents, args.repeat = 5, 3, "2", 1
    results = []
    for agents in [int(a) for a in args.agents.split(",")]:
        with bench_stack(agents=agents) as stack:
            client = Client(stack.api_url)
            wait_all(client, [client.submit(sequential_workflow("warmup", 2))["id"]])
            seq = [sequential(client, args.steps) for _ in range(args.repeat)]
            conc = [concurrent(client, args.workflows) for _ in range(args.repeat)]
        results.append({
            "agents": agents,
            "sequential": {
                "runs": seq,
                "steps_per_s": summary([r["steps_per_s"] for r in seq]),
                "overhead_ms": summary([r["overhead_ms_median"] for r in seq]),
            },
            "concurrent": {
                "runs": conc,
                "steps_per_s": summary([r["steps_per_s"] for r in conc]),
            },
        })
        print(f"agents={agents}: sequential {results[-1]['sequential']['steps_per_s']['median']:.1f} steps/s, "
              f"concurrent {results[-1]['concurrent']['steps_per_s']['median']:.1f} steps/s", file=sys.stderr)
    write_result("throughput", {
        "params": {"steps": args.steps, "workflows": args.workflows, "steps_per_workflow": 10, "repeat": args.repeat},
        "results": results,
    }, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
