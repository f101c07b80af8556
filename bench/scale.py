"""Scale: many runs in the system, many agents connected.

Runs: ``--runs`` one-step workflows submitted by 8 client threads; per-request submit latency,
time until all have finished, then, with all of them stored, the latency of ``GET
/v1/workflows?limit=50`` (the list) and ``GET /v1/workflows/{id}``, and the RSS of every service.

Agents: ``--agents`` agent processes (one process per agent: an agent is a process today) in
one group; time until every one holds a NATS connection and, where the agent registry exists
(KV bucket ``wf_agents``), until every one is registered there; then one fan-out job to all of
them (``runs-on: {group: bench, each: true}``; N parallel jobs where agents do not register),
and the RSS of the services with that many agents.

Memory over many runs (``--rss-every N``): the runs are submitted N at a time, each slice
waited for, and the RSS of every service sampled after it, so a cache that is not bounded
shows as a curve that keeps rising (issue #13: 45 -> 178 MB over 20,000 runs once).

    python bench/scale.py --runs 2000 --agents 50
    python bench/scale.py --runs 20000 --rss-every 1000 --agents 0 --out bench/results/scheduler-memory.json
    python bench/scale.py --smoke --out /tmp/s.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    COMMAND,
    _has_tcp_connection,
    bench_stack,
    parallel_jobs_workflow,
    registered_agents,
    rss_kib,
    sequential_workflow,
    summary,
    ts,
    wait_all,
    write_result,
)

from waterflow import Client  # noqa: E402


def timed(call: Any, repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return summary(samples)


def services_rss(stack: Any) -> dict[str, float]:
    return {n: rss_kib(p.pid) / 1024 for n, p in stack.processes.items() if not n.startswith("agent-")}


def runs_part(count: int) -> dict[str, Any]:
    with bench_stack(agents=1) as stack:
        client = Client(stack.api_url)
        started = time.time()
        samples: list[float] = []

        def one(i: int) -> tuple[str, float]:
            t = time.perf_counter()
            run_id = client.submit(sequential_workflow(f"s{i}", 1))["id"]
            samples.append((time.perf_counter() - t) * 1000)
            return run_id, t

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            run_ids = [r for r, _ in pool.map(one, range(count))]
        submitted = time.time()
        states = wait_all(client, run_ids, timeout=1800)
        finished = max(ts(s["finished_at"]) for s in states)
        return {
            "count": count,
            "submit_ms": summary(samples),
            "submits_per_s": count / (submitted - started),
            "all_finished_s": finished - started,
            "runs_per_s": count / (finished - started),
            "list_50_ms": timed(lambda: client.list(50), 10),
            "get_one_ms": timed(lambda: client.get(run_ids[len(run_ids) // 2]), 20),
            "rss_mib": services_rss(stack),
        }


def memory_part(count: int, every: int) -> dict[str, Any]:
    """``count`` one-step runs, ``every`` at a time (8 client threads); the services' RSS after
    each slice has finished."""
    from concurrent.futures import ThreadPoolExecutor

    with bench_stack(agents=1) as stack:
        client = Client(stack.api_url)
        samples = [{"runs": 0, **services_rss(stack)}]
        started = time.time()
        with ThreadPoolExecutor(8) as pool:
            done = 0
            while done < count:
                size = min(every, count - done)
                run_ids = list(pool.map(lambda i: client.submit(sequential_workflow(f"m{i}", 1))["id"], range(done, done + size)))
                wait_all(client, run_ids, timeout=1800)
                done += size
                samples.append({"runs": done, **services_rss(stack)})
                print(f"{done} runs, {time.time() - started:.0f} s: "
                      + ", ".join(f"{n} {v:.0f} MiB" for n, v in samples[-1].items() if n != "runs"), file=sys.stderr)
        return {"count": count, "every": every, "elapsed_s": time.time() - started, "rss_mib": samples}


def agents_part(count: int, per_process: int = 1) -> dict[str, Any]:
    if per_process > 1:
        return packed_agents_part(count, per_process)
    started = time.perf_counter()
    with bench_stack(agents=count, max_concurrent=1) as stack:
        connected_s = time.perf_counter() - started
        registered = registered_agents(stack.nats_url)
        deadline = time.monotonic() + 60
        while registered is not None and registered < count and time.monotonic() < deadline:
            if registered == 0 and time.monotonic() > deadline - 50:
                break  # after 10 s nobody registered: these agents do not register (yet)
            time.sleep(0.2)
            registered = registered_agents(stack.nats_url)
        registered_s = time.perf_counter() - started
        client = Client(stack.api_url)
        t = time.time()
        # A fan-out job to every agent where they all registered; else N parallel jobs.
        mode = "fanout" if registered == count else "jobs"
        source = (f"name: wide\njobs:\n  all:\n    runs-on: {{group: bench, each: true}}\n    steps:\n      - run: {COMMAND}\n"
                  if mode == "fanout" else parallel_jobs_workflow("wide", count))
        state, = wait_all(client, [client.submit(source)["id"]], timeout=600)
        wide_s = time.time() - t
        agents_used = len({s.get("agent") for j in state["jobs"].values() for s in j["steps"]})
        agent_rss = [rss_kib(p.pid) / 1024 for n, p in stack.processes.items() if n.startswith("agent-")]
        connected = sum(_has_tcp_connection(p.pid, stack.nats_port) for n, p in stack.processes.items() if n.startswith("agent-"))
        return {
            "started": count,
            "connected": connected,
            "all_connected_s": connected_s,
            "registered": registered,
            "all_registered_s": registered_s if registered is not None else None,
            "wide_run_mode": mode,
            "wide_run_s": wide_s,
            "wide_run_agents_used": agents_used,
            "agent_rss_mib_median": statistics.median(agent_rss),
            "rss_mib": services_rss(stack),
        }


def packed_agents_part(count: int, per_process: int) -> dict[str, Any]:
    """``count`` agents, ``per_process`` of them per process (``many_agents.py``: one NATS
    connection each, every agent registering and pulling its own subject), then one fan-out
    job to all of them."""
    import subprocess

    script = Path(__file__).resolve().parent / "many_agents.py"
    with bench_stack(agents=0) as stack:
        started = time.perf_counter()
        processes = []
        for first in range(0, count, per_process):
            processes.append(subprocess.Popen(
                [sys.executable, str(script), stack.nats_url, f"p{first // per_process:02d}", str(min(per_process, count - first)),
                 "bench", str(stack.data_dir / "many")],
                stdout=subprocess.PIPE, text=True,
            ))
        try:
            for process in processes:
                assert process.stdout is not None and process.stdout.readline().strip() == "ready"
            registered_s = time.perf_counter() - started
            client = Client(stack.api_url)
            registered = sum(a["status"] == "healthy" for a in client.agents("bench"))
            source = f"name: wide\njobs:\n  all:\n    runs-on: {{group: bench, each: true}}\n    steps:\n      - run: {COMMAND}\n"
            t = time.time()
            state = client.wait(client.submit(source)["id"], timeout=1200, poll=0.5)
            wide_s = time.time() - t
            instances = [j for j in state["jobs"].values() if j["steps"]]
            errors = sorted({j.get("error") or s.get("error") or "" for j in instances for s in j["steps"]} - {""})
            return {
                "started": count,
                "agents_per_process": per_process,
                "processes": len(processes),
                "registered": registered,
                "all_registered_s": registered_s,
                "wide_run_mode": "fanout",
                "wide_run_status": state["status"],
                "wide_run_s": wide_s,
                "wide_run_agents_used": len({j["steps"][0].get("agent") for j in instances}),
                "wide_run_instances_succeeded": sum(j["status"] == "succeeded" for j in instances),
                "wide_run_error": state.get("error"),
                "wide_run_instance_errors": errors[:5],
                "agent_process_rss_mib_median": statistics.median(rss_kib(p.pid) / 1024 for p in processes),
                "rss_mib": services_rss(stack),
            }
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--agents-per-process", type=int, default=1,
                        help="above 1: run the agents packed in processes (bench/many_agents.py) to reach 1000 on one machine")
    parser.add_argument("--rss-every", type=int, metavar="N",
                        help="instead of the runs' latencies: sample every service's RSS after each N runs")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.agents = 20, min(args.agents, 2)
        args.agents_per_process = min(args.agents_per_process, 2)
    runs = memory_part(args.runs, args.rss_every) if args.rss_every else runs_part(args.runs)
    agents = agents_part(args.agents, args.agents_per_process) if args.agents else None
    write_result("scale", {"params": vars(args), "runs": runs, "agents": agents}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
