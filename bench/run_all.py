"""Run every benchmark at the sizes used for docs/performance.md, one after the other, in one go
(so ratios between Waterflow and its peers come from the same run on the same machine), then
render the report (tables on stdout, plots in docs/img/).

    pip install -e '.[bench]'
    python bench/run_all.py                 # about 40 minutes on 2 cores
    python bench/run_all.py --only throughput,temporal
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

PLAN = {
    "footprint": ["footprint.py", "--repeat", "5"],
    "throughput": ["throughput.py", "--steps", "500", "--workflows", "200", "--agents", "1,4,16", "--repeat", "3"],
    "latency": ["latency.py", "--probes", "100"],
    "sdk_wait": ["sdk_wait.py", "--probes", "100"],
    "temporal": ["peers/temporal_bench.py", "--steps", "500", "--workflows", "200", "--probes", "100", "--repeat", "3"],
    "ansible": ["peers/ansible_bench.py", "--hosts", "4,16", "--repeat", "5", "--mode", "fanout"],
    "scale": ["scale.py", "--runs", "10000", "--agents", "1000", "--agents-per-process", "100"],
    "profile": ["profile_hot_path.py", "--steps", "1000", "--keep", str(HERE / "results" / "profile")],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(PLAN))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(PLAN)
    for name in names:
        script, *rest = PLAN[name]
        started = time.perf_counter()
        print(f"== {name}: {script} {' '.join(rest)}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(HERE / script), *rest, "--out", str(HERE / "results" / f"{name}.json")],
                       check=True, stdout=subprocess.DEVNULL)
        print(f"   done in {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, str(HERE / "report.py")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
