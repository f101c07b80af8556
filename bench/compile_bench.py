"""Compile-time benchmark: a generated 1000-line workflow, median of repeated compiles.

Run: ``python bench/compile_bench.py [--lines 1000] [--repeat 30]``. The budget (issue 3) is
"well under 100 ms" for 1000 lines; the script exits 1 when the median exceeds ``--budget-ms``.
Not a test: timings depend on the machine, so they are measured here rather than asserted in CI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from waterflow_compiler import compile_workflow


def generate(lines: int) -> str:
    """A workflow of about ``lines`` lines using most features: inputs, matrix, needs, outputs,
    expressions in run/env/if, node steps and retries."""
    out = [
        "name: generated",
        "on: [manual]",
        "inputs:",
        "  environment: {type: choice, options: [staging, production], default: staging}",
        "env:",
        "  REGION: eu",
        "jobs:",
    ]
    job = 0
    while len(out) < lines:
        out += [
            f"  job{job}:",
            "    runs-on: web",
            f"    needs: [job{job - 1}]" if job else "    needs: []",
            "    strategy:",
            "      matrix:",
            "        os: [debian, alpine]",
            "        size: [s, m]",
            "    outputs:",
            "      version: ${{ steps.s0.outputs.version }}",
            "    steps:",
        ]
        for step in range(4):
            out += [
                f"      - id: s{step}",
                f"        name: step {step} on ${{{{ matrix.os }}}}",
                "        if: ${{ success() && matrix.size != 'xl' }}",
                "        env:",
                "          TARGET: ${{ inputs.environment }}",
                (f"          PREVIOUS: ${{{{ needs.job{job - 1}.outputs.version }}}}" if job else "          PREVIOUS: none"),
                "        run: |",
                f"          echo \"version=1.{step}\" >> \"$WATERFLOW_OUTPUT\"",
                "          echo \"deploying to $TARGET in ${{ env.REGION }}\"",
                "        retry: {attempts: 3, initial-interval: 5s}",
            ]
        out += ["      - uses: sleep@v1", "        with: {seconds: 1s}"]
        job += 1
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--budget-ms", type=float, default=100.0)
    args = parser.parse_args(argv)
    source = generate(args.lines)
    plan, diagnostics = compile_workflow(source, "generated.yml")
    if plan is None:
        print("the generated workflow does not compile:", *diagnostics[:5], sep="\n", file=sys.stderr)
        return 2
    timings = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        compile_workflow(source, "generated.yml")
        timings.append((time.perf_counter() - start) * 1000)
    median = statistics.median(timings)
    print(f"compile: {source.count(chr(10))} lines, {len(plan.jobs)} jobs, "
          f"{sum(len(j.steps) for j in plan.jobs.values())} steps: median {median:.1f} ms, "
          f"min {min(timings):.1f} ms, max {max(timings):.1f} ms over {args.repeat} runs")
    return 0 if median < args.budget_ms else 1


if __name__ == "__main__":
    sys.exit(main())
