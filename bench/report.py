"""Turn bench/results/*.json into Markdown tables (stdout) and PNG plots.

    python bench/report.py                                  # tables on stdout, plots in docs/img/
    python bench/report.py --doc docs/performance.md        # also replace the generated section
    python bench/report.py --results /tmp/r --plots /tmp/p  # elsewhere (the smoke test does this)

Missing result files are skipped, so any subset of the benchmarks can be reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _agent_rows(ag: dict) -> list[str]:
    """Scale rows for agents: one process per agent, or many agents packed per process."""
    if ag.get("agents_per_process", 1) > 1:
        return [
            f"| agents started | {ag['started']} in {ag['processes']} processes ({ag['agents_per_process']} per process, `bench/many_agents.py`) |",
            f"| all registered (healthy in `wf_agents`) after | {f(ag['all_registered_s'], 2)} s ({ag['registered']} healthy) |",
            f"| one fan-out run to all {ag['started']} agents | {f(ag['wide_run_s'], 2)} s, {ag['wide_run_status']}, "
            f"{ag['wide_run_instances_succeeded']} instances succeeded on {ag['wide_run_agents_used']} agents |",
            f"| RSS of one process of {ag['agents_per_process']} agents (median) | {f(ag['agent_process_rss_mib_median'])} MiB |",
            "| services' RSS with them (MiB) | " + ", ".join(f"{k} {v:.0f}" for k, v in ag["rss_mib"].items()) + " |",
        ]
    return [
        f"| agent processes started / connected | {ag['started']} / {ag['connected']} in {f(ag['all_connected_s'], 2)} s |",
        f"| agents registered in `wf_agents` | {f(ag['registered'])} |",
        f"| one run to all {ag['started']} agents ({ag.get('wide_run_mode', 'jobs')}) | {f(ag['wide_run_s'], 2)} s on {ag['wide_run_agents_used']} agents |",
        f"| RSS per agent process (median) | {f(ag['agent_rss_mib_median'])} MiB |",
    ]


def load(results: Path) -> dict[str, Any]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}


def f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def tables(r: dict[str, Any]) -> str:
    out: list[str] = []
    any_result = next(iter(r.values()), None)
    if any_result:
        m = any_result["machine"]
        out += [f"Machine: {m['cpus']} CPUs ({m['cpu'] or 'unknown'}), {m['memory_gib']} GiB, Python {m['python']}, "
                f"{m['platform']}; measured {m['at']}.", ""]
    if "throughput" in r:
        t = r["throughput"]
        p = t["params"]
        out += [f"### Throughput ({p['steps']} sequential steps; {p['workflows']} concurrent workflows × 10 steps; "
                f"median of {p['repeat']} runs, [min–max])", "",
                "| agents | sequential steps/s | per-step overhead (ms) | concurrent steps/s |", "|---|---|---|---|"]
        for row in t["results"]:
            s, o, c = row["sequential"]["steps_per_s"], row["sequential"]["overhead_ms"], row["concurrent"]["steps_per_s"]
            out.append(f"| {row['agents']} | {f(s['median'])} [{f(s['min'])}–{f(s['max'])}] | {f(o['median'], 2)} "
                       f"[{f(o['min'], 2)}–{f(o['max'], 2)}] | {f(c['median'])} [{f(c['min'])}–{f(c['max'])}] |")
        if "temporal" in r:
            tp = r["temporal"]
            s, o, c = tp["sequential"]["steps_per_s"], tp["sequential"]["overhead_ms"], tp["concurrent"]["steps_per_s"]
            out.append(f"| Temporal (1 worker) | {f(s['median'])} [{f(s['min'])}–{f(s['max'])}] | {f(o['median'], 2)} "
                       f"[{f(o['min'], 2)}–{f(o['max'], 2)}] | {f(c['median'])} [{f(c['min'])}–{f(c['max'])}] |")
            one = t["results"][0]
            out += ["", f"Waterflow (1 agent) / Temporal: sequential "
                    f"**{one['sequential']['steps_per_s']['median'] / s['median']:.1f}×** the steps/s, concurrent "
                    f"**{one['concurrent']['steps_per_s']['median'] / c['median']:.1f}×**; per-step overhead "
                    f"{one['sequential']['overhead_ms']['median']:.2f} ms vs {o['median']:.2f} ms."]
        out.append("")
    if "latency" in r:
        lat = r["latency"]
        out += ["### Latency: submit → first step started (ms)", "",
                "| load | measured | n | P50 | P95 | P99 | max |", "|---|---|---|---|---|---|---|"]
        for load in ("light", "heavy"):
            for key, label in (("submit_to_start_ms", "client submit → step.started"),
                               ("created_to_start_ms", "run.created → step.started")):
                s = lat[load][key]
                out.append(f"| {load} | {label} | {s['n']} | {f(s['p50'])} | {f(s['p95'])} | {f(s['p99'])} | {f(s['max'])} |")
        if "temporal" in r:
            s = r["temporal"]["latency_light"]["submit_to_start_ms"]
            out.append(f"| light | Temporal: client start → first activity started | {s['n']} | {f(s['p50'])} | "
                       f"{f(s['p95'])} | {f(s['p99'])} | {f(s['max'])} |")
        bg = lat["heavy_background"]
        out += ["", f"Heavy load: {bg['runs']} background runs, {bg['steps']} steps at {f(bg['steps_per_s'])} steps/s "
                f"on two other agents while the probes ran.", ""]
    if "ansible" in r:
        a = r["ansible"]
        out += [f"### The same command on N hosts: Ansible vs Waterflow (mode `{a['params']['mode']}`; seconds, "
                f"median of {a['params']['repeat']})", "",
                "| hosts | Ansible (`ansible-playbook`, local connection) | Waterflow (running stack) | Waterflow / Ansible |",
                "|---|---|---|---|"]
        for row in a["results"]:
            out.append(f"| {row['hosts']} | {f(row['ansible_s']['median'], 2)} | {f(row['waterflow_s']['median'], 3)} | "
                       f"{row['waterflow_over_ansible']:.3f} |")
        out.append("")
    if "footprint" in r:
        fp = r["footprint"]["summary"]
        out += ["### Footprint (idle, after one run; median of "
                f"{fp['ready_s']['n']} starts)", "", "| process | RSS (MiB) |", "|---|---|"]
        for key in sorted(k for k in fp if k.startswith("rss_mib_")):
            out.append(f"| {key.removeprefix('rss_mib_')} | {f(fp[key]['median'])} |")
        total = sum(fp[k]["median"] for k in fp if k.startswith("rss_mib_"))
        out += [f"| **total** | **{f(total)}** |", "",
                f"Stack.start() → API healthy: median **{fp['ready_s']['median']:.2f} s** (max {fp['ready_s']['max']:.2f} s)."]
        if "temporal" in r:
            out.append(f"Temporal dev server start → port open: {r['temporal']['server_ready_s']:.2f} s.")
        out.append("")
    if "scale" in r:
        sc = r["scale"]
        ru, ag = sc["runs"], sc["agents"]
        out += ["### Scale", "", "| measure | value |", "|---|---|",
                f"| runs submitted (8 client threads) | {ru['count']} at {f(ru['submits_per_s'])} submits/s, "
                f"P50 {f(ru['submit_ms']['p50'])} ms, P99 {f(ru['submit_ms']['p99'])} ms |",
                f"| all {ru['count']} one-step runs finished after | {f(ru['all_finished_s'], 2)} s ({f(ru['runs_per_s'])} runs/s) |",
                f"| `GET /v1/workflows?limit=50` with {ru['count']} runs stored | P50 {f(ru['list_50_ms']['p50'])} ms |",
                f"| `GET /v1/workflows/{{id}}` | P50 {f(ru['get_one_ms']['p50'], 2)} ms |",
                "| services' RSS after (MiB) | " + ", ".join(f"{k} {v:.0f}" for k, v in ru["rss_mib"].items()) + " |",
                *_agent_rows(ag), ""]
    if "profile" in r:
        pr = r["profile"]
        u = pr["unprofiled"]
        out += [f"### Hot path ({pr['steps']} sequential steps)", "",
                f"{f(u['steps_per_s'])} steps/s unprofiled. Per step: NATS messages in {f(u['nats_messages_per_step']['in'])}, "
                f"out {f(u['nats_messages_per_step']['out'])}, {f(u['nats_messages_per_step']['in_bytes'], 0)} bytes in.", "",
                "| process | CPU ms per step |", "|---|---|"]
        for name, ms in u["cpu_ms_per_step"].items():
            out.append(f"| {name} | {f(ms, 2)} |")
        out.append("")
        for service, top in pr.get("top", {}).items():
            out += [f"Top own time, {service} ({top['samples']} samples):", "", "| function | share |", "|---|---|"]
            out += [f"| `{row['function']}` | {row['share'] * 100:.1f}% |" for row in top["own"][:12]]
            out.append("")
    return "\n".join(out)


def plots(r: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if "throughput" in r:
        rows = r["throughput"]["results"]
        agents = [row["agents"] for row in rows]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key, label in (("sequential", "one workflow, sequential steps"), ("concurrent", "concurrent workflows × 10 steps")):
            med = [row[key]["steps_per_s"]["median"] for row in rows]
            lo = [m - row[key]["steps_per_s"]["min"] for m, row in zip(med, rows)]
            hi = [row[key]["steps_per_s"]["max"] - m for m, row in zip(med, rows)]
            ax.errorbar([str(a) for a in agents], med, yerr=[lo, hi], marker="o", capsize=3, label=f"Waterflow: {label}")
        if "temporal" in r:
            tp = r["temporal"]
            ax.axhline(tp["sequential"]["steps_per_s"]["median"], color="gray", linestyle="--", label="Temporal: sequential")
            ax.axhline(tp["concurrent"]["steps_per_s"]["median"], color="gray", linestyle=":", label="Temporal: concurrent")
        ax.set_xlabel("agents")
        ax.set_ylabel("steps/s")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
        ax.set_title("Step throughput (median, min–max)")
        fig.tight_layout()
        written.append(_save(fig, out_dir / "throughput.png"))
    if "latency" in r:
        lat = r["latency"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        groups = [("light", lat["light"]["submit_to_start_ms"]), ("heavy", lat["heavy"]["submit_to_start_ms"])]
        if "temporal" in r:
            groups.append(("Temporal light", r["temporal"]["latency_light"]["submit_to_start_ms"]))
        width = 0.25
        for i, q in enumerate(("p50", "p95", "p99")):
            ax.bar([x + i * width for x in range(len(groups))], [g[1][q] for g in groups], width, label=q.upper())
        ax.set_xticks([x + width for x in range(len(groups))], [g[0] for g in groups])
        ax.set_ylabel("ms")
        ax.set_title("Submit → first step started")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(_save(fig, out_dir / "latency.png"))
    if "ansible" in r:
        rows = r["ansible"]["results"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        hosts = [str(row["hosts"]) for row in rows]
        ax.bar([i - 0.2 for i in range(len(rows))], [row["ansible_s"]["median"] for row in rows], 0.4, label="Ansible")
        ax.bar([i + 0.2 for i in range(len(rows))], [row["waterflow_s"]["median"] for row in rows], 0.4, label="Waterflow")
        ax.set_xticks(range(len(rows)), hosts)
        ax.set_xlabel("hosts")
        ax.set_ylabel("seconds")
        ax.set_title("Same shell command on N hosts")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(_save(fig, out_dir / "ansible.png"))
    if "footprint" in r:
        fp = r["footprint"]["summary"]
        keys = sorted(k for k in fp if k.startswith("rss_mib_"))
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar([k.removeprefix("rss_mib_") for k in keys], [fp[k]["median"] for k in keys])
        ax.axhline(50, color="red", linestyle="--", label="agent target 50 MiB")
        ax.set_ylabel("RSS (MiB)")
        ax.set_title("Idle memory per process")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(_save(fig, out_dir / "footprint.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--plots", default=str(HERE.parent / "docs" / "img"))
    parser.add_argument("--doc", help="Markdown file whose results section to replace")
    args = parser.parse_args(argv)
    results = load(Path(args.results))
    text = tables(results)
    print(text)
    try:
        for path in plots(results, Path(args.plots)):
            print(f"wrote {path}", file=sys.stderr)
    except ImportError:
        print("matplotlib is not installed: no plots (pip install -e '.[bench]')", file=sys.stderr)
    if args.doc:
        doc = Path(args.doc)
        content = doc.read_text()
        head, rest = content.split(BEGIN, 1)
        doc.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
