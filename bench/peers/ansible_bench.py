"""Ansible vs Waterflow: the same shell command on N "hosts".

Ansible (``ansible-core``): an inventory of N aliases with ``ansible_connection=local``, a playbook
with one ``shell: echo hello`` task, ``gather_facts: false``, ``--forks N``. Timed: the whole
``ansible-playbook`` command (Ansible has no server; its start-up is part of every run).

Waterflow: N agents in group ``bench`` (separate processes, as N servers would have), and one
workflow that runs the command on each of them. With ``--mode fanout`` (the default) it is one
fan-out job (``runs-on: {group: bench, each: true}``: one instance per registered agent, the
equivalent of a play on every host); with ``--mode jobs`` it is N independent one-step jobs,
which run in parallel on whichever agents are free, not necessarily one per agent. Timed: submit -> run
finished, from the client; the stack is already running (a server that is up, unlike Ansible).

    pip install ansible-core               # or: pip install -e '.[bench]'
    python bench/peers/ansible_bench.py --hosts 4,16 --repeat 3
    python bench/peers/ansible_bench.py --smoke --out /tmp/ansible.json
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import (  # noqa: E402
    COMMAND,
    bench_stack,
    parallel_jobs_workflow,
    summary,
    ts,
    wait_all,
    wait_registered,
    write_result,
)

from waterflow import Client  # noqa: E402


def ansible_playbook() -> str:
    candidate = Path(sysconfig.get_path("scripts")) / "ansible-playbook"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ansible-playbook")
    if not found:
        raise SystemExit("ansible-playbook is not installed: pip install ansible-core")
    return found


def ansible_once(hosts: int, work: Path) -> float:
    inventory = work / "inventory.ini"
    inventory.write_text("[all]\n" + "".join(
        f"h{i} ansible_connection=local ansible_python_interpreter={sys.executable}\n" for i in range(hosts)
    ))
    playbook = work / "playbook.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        f"    - name: run the command\n      ansible.builtin.shell: {COMMAND}\n"
    )
    env = {"ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False",
           "ANSIBLE_LOCAL_TEMP": str(work / "tmp"), "ANSIBLE_REMOTE_TEMP": str(work / "rtmp"),
           "ANSIBLE_NOCOLOR": "1", "PATH": "/usr/bin:/bin:" + str(Path(sys.executable).parent),
           "HOME": str(work)}
    started = time.perf_counter()
    subprocess.run([ansible_playbook(), "-i", str(inventory), "--forks", str(hosts), str(playbook)],
                   check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def fanout_workflow(name: str) -> str:
    return (f"name: {name}\njobs:\n  all:\n    runs-on: {{group: bench, each: true}}\n"
            f"    steps:\n      - run: {COMMAND}\n")


def waterflow_once(client: Client, hosts: int, mode: str) -> dict[str, float]:
    source = fanout_workflow("fan") if mode == "fanout" else parallel_jobs_workflow("fan", hosts)
    started = time.time()
    run_id = client.submit(source)["id"]
    state, = wait_all(client, [run_id], timeout=300)
    ended = time.time()
    instances = [j for j in state["jobs"].values() if j.get("steps")]
    return {"wall_s": ended - started, "server_side_s": ts(state["finished_at"]) - ts(state["created_at"]),
            "jobs_run": len(instances), "agents_used": len({s.get("agent") for j in instances for s in j["steps"]})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="4,16", help="comma-separated host counts")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=("jobs", "fanout"), default="fanout")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.hosts, args.repeat = "2", 1
    results = []
    for hosts in [int(h) for h in args.hosts.split(",")]:
        with tempfile.TemporaryDirectory(prefix="ansible-bench-") as work:
            ansible = [ansible_once(hosts, Path(work)) for _ in range(args.repeat)]
        with bench_stack(agents=hosts, max_concurrent=1) as stack:
            if args.mode == "fanout":
                wait_registered(stack, hosts)  # a fan-out runs on the agents registered when it starts
            client = Client(stack.api_url)
            wait_all(client, [client.submit(parallel_jobs_workflow("warmup", 1))["id"]])
            waterflow = [waterflow_once(client, hosts, args.mode) for _ in range(args.repeat)]
        ratio = summary([w["wall_s"] for w in waterflow])["median"] / summary(ansible)["median"]
        results.append({
            "hosts": hosts,
            "ansible_s": summary(ansible),
            "waterflow_s": summary([w["wall_s"] for w in waterflow]),
            "waterflow_runs": waterflow,
            "waterflow_over_ansible": ratio,
        })
        print(f"hosts={hosts}: ansible {summary(ansible)['median']:.2f}s, waterflow "
              f"{summary([w['wall_s'] for w in waterflow])['median']:.3f}s", file=sys.stderr)
    write_result("ansible", {"params": vars(args), "results": results}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
