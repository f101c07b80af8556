"""SDK wait: how long after a run has finished does ``Client.wait`` return?

A probe is a one-step workflow (``echo hello``), submitted and then awaited three ways, one probe
at a time:

- ``sdk_wait``: :meth:`waterflow.Client.wait`, which follows the run's live event stream
  (``/watch``) and returns when ``run.completed`` arrives;
- ``raw_watch``: a bare ``GET /v1/workflows/{id}/watch`` read line by line until
  ``run.completed`` (the floor: what any client of the stream can see);
- ``poll_200ms``: what ``wait`` did before: ``GET /v1/workflows/{id}`` every 200 ms until the run
  is finished (``--poll-probes`` of them).

Each is reported as ``over_completion_ms``: the client's clock when the call returned minus the
``at`` of the run's ``run.completed`` event (stamped by the scheduler on the same machine when it
decided the run was over), and ``submit_to_return_ms``: from just before ``POST /v1/workflows``.
The target: ``sdk_wait`` p95 ≤ 15 ms over completion.

    python bench/sdk_wait.py --probes 100
    python bench/sdk_wait.py --smoke --out /tmp/w.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bench_stack, sequential_workflow, summary, write_result  # noqa: E402

from waterflow import Client  # noqa: E402


def completed_at(client: Client, run_id: str) -> float:
    """The ``at`` of the run's ``run.completed`` event, as Unix seconds."""
    for event in client.events(run_id):
        if event["type"] == "run.completed":
            at = event["at"]
            if isinstance(at, str):
                at = datetime.fromisoformat(at.replace("Z", "+00:00"))
            return at.timestamp()
    raise RuntimeError(f"run {run_id} has no run.completed event")


def sdk_wait(client: Client, run_id: str) -> str:
    return str(client.wait(run_id, timeout=60)["status"])


def raw_watch(client: Client, run_id: str) -> str:
    with urllib.request.urlopen(f"{client.url}/v1/workflows/{run_id}/watch", timeout=60) as response:
        for line in response:
            item = json.loads(line)
            if item.get("type") == "run.completed":
                return str(item["status"])
    raise RuntimeError(f"the stream of {run_id} ended without run.completed")


def poll_200ms(client: Client, run_id: str) -> str:
    """The SDK's wait before it followed the stream."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = str(client.get(run_id)["status"])
        if status in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(0.2)
    raise TimeoutError(run_id)


def probe(client: Client, how: Callable[[Client, str], str]) -> dict[str, float]:
    submitted = time.time()
    run_id = client.submit(sequential_workflow("probe", 1))["id"]
    status = how(client, run_id)
    returned = time.time()
    if status != "succeeded":
        raise RuntimeError(f"probe {run_id} {status}")
    done = completed_at(client, run_id)
    return {"over_completion_ms": (returned - done) * 1000, "submit_to_return_ms": (returned - submitted) * 1000}


def stats(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {key: summary([s[key] for s in samples]) for key in ("over_completion_ms", "submit_to_return_ms")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=100, help="probes for sdk_wait and raw_watch each")
    parser.add_argument("--poll-probes", type=int, default=30, help="probes for the old 200 ms polling")
    parser.add_argument("--interval", type=float, default=0.02, help="pause between probes (s)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.probes, args.poll_probes = 3, 2

    methods: dict[str, tuple[Callable[[Client, str], str], int]] = {
        "sdk_wait": (sdk_wait, args.probes), "raw_watch": (raw_watch, args.probes), "poll_200ms": (poll_200ms, args.poll_probes),
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in methods}
    with bench_stack(agents=1) as stack:
        client = Client(stack.api_url)
        for how, _ in methods.values():
            probe(client, how)  # warm-up: connections, caches
        # Interleaved, so that a slow moment of the machine falls on every method alike.
        for i in range(max(count for _, count in methods.values())):
            for name, (how, count) in methods.items():
                if i < count:
                    samples[name].append(probe(client, how))
                    time.sleep(args.interval)

    result = {
        "params": vars(args),
        **{name: stats(rows) for name, rows in samples.items()},
        "samples": samples,
    }
    write_result("sdk_wait", result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
