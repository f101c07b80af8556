"""The job graph: ``needs`` references, cycles, and a topological order.

Jobs come out in a stable topological order (file order among jobs that are ready together), so a
plan reads like the file. :func:`levels` groups jobs that can run at the same time, for
``waterflow dry-run``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .report import Report, did_you_mean
from .yaml_source import Path

JOB_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def needs_of(job: object) -> list[str]:
    """The ``needs`` of a job as a list of names (ignores entries of the wrong type)."""
    needs = job.get("needs") if isinstance(job, dict) else None
    if isinstance(needs, str):
        return [needs]
    if isinstance(needs, list):
        return [n for n in needs if isinstance(n, str)]
    return []


def check(report: Report, jobs: Mapping[str, Any]) -> list[str]:
    """Check job ids and ``needs``; return the jobs in topological order (file order on ties).

    Jobs on a cycle are still returned (after the others) so later checks see every job.
    """
    for job_id in jobs:
        if not JOB_ID.match(job_id):
            report.error(("jobs", job_id), "job-id", f"invalid job id {job_id!r}",
                         "job ids start with a letter or '_' and contain only letters, digits, '-' and '_'", key=True)
    for job_id, job in jobs.items():
        raw_needs = job.get("needs") if isinstance(job, dict) else None
        seen: set[str] = set()
        for i, need in enumerate(needs_of(job)):
            path: Path = ("jobs", job_id, "needs", i) if isinstance(raw_needs, list) else ("jobs", job_id, "needs")
            if need in seen:
                report.warning(path, "duplicate-need", f"job {job_id!r} lists {need!r} in 'needs' twice", "remove the duplicate")
            seen.add(need)
            if need == job_id:
                report.error(path, "cycle", f"job {job_id!r} needs itself", "remove it from its own 'needs'")
            elif need not in jobs:
                report.error(path, "unknown-job", f"job {job_id!r} needs unknown job {need!r}",
                             did_you_mean(need, [j for j in jobs if j != job_id], listing="defined jobs"))

    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    reported: set[frozenset[str]] = set()
    for root in jobs:
        if state.get(root):
            continue
        # Depth-first search with an explicit stack (no recursion limit for long chains).
        trail: list[str] = [root]
        pending: list[list[str]] = [[n for n in needs_of(jobs[root]) if n in jobs and n != root]]
        state[root] = 1
        while trail:
            if not pending[-1]:
                done = trail.pop()
                pending.pop()
                state[done] = 2
                order.append(done)
                continue
            need = pending[-1].pop(0)
            if state.get(need) == 2:
                continue
            if state.get(need) == 1:
                cycle = trail[trail.index(need):] + [need]
                members = frozenset(cycle)
                if members not in reported:
                    reported.add(members)
                    report.error(("jobs", cycle[-2], "needs"), "cycle",
                                 f"jobs depend on each other in a cycle: {' -> '.join(cycle)}",
                                 "remove one of these 'needs' so the jobs can be ordered")
                continue
            state[need] = 1
            trail.append(need)
            pending.append([n for n in needs_of(jobs[need]) if n in jobs and n != need])
    return order


def levels(needs: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """Jobs grouped by the earliest moment they can start: level 0 needs nothing, level n needs
    something on level n-1. ``needs`` maps each job to its needs, in topological order."""
    depth: dict[str, int] = {}
    for job_id, job_needs in needs.items():
        depth[job_id] = 1 + max((depth.get(n, -1) for n in job_needs), default=-1)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for job_id, level in depth.items():
        out[level].append(job_id)
    return out
