"""``waterflow validate`` and ``waterflow dry-run`` as a user runs them: real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).parent / "cases"
ROOT = Path(__file__).resolve().parents[2]


def waterflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waterflow", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_validate_exits_2_on_errors_and_prints_each_with_a_caret() -> None:
    result = waterflow("validate", str(CASES / "unknown_keys.yml"), "examples/hello.yml")
    assert result.returncode == 2
    assert "unknown_keys.yml:5:5: unknown key 'step' in jobs.build [unknown-key]" in result.stderr
    assert "did you mean 'steps'?" in result.stderr and "^" in result.stderr
    assert "examples/hello.yml: ok" in result.stdout
    assert "Traceback" not in result.stderr


def test_validate_exits_0_on_warnings_only() -> None:
    result = waterflow("validate", str(CASES / "valid_warnings_only.yml"))
    assert result.returncode == 0, result.stderr
    assert "[untrusted-input-in-script]" in result.stderr and "warning" in result.stderr


def test_validate_json_lists_diagnostics_as_data() -> None:
    result = waterflow("validate", "--format", "json", str(CASES / "job_graph.yml"))
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False
    rules = {(d["rule"], d["line"], d["col"]) for d in report["diagnostics"]}
    assert ("unknown-job", 14, 16) in rules and ("cycle", 9, 12) in rules
    assert all({"path", "line", "col", "rule", "message"} <= set(d) for d in report["diagnostics"])


def test_dry_run_prints_levels_groups_and_matrix_without_running(tmp_path: Path) -> None:
    workflow = tmp_path / "w.yml"
    workflow.write_text(
        "jobs:\n"
        "  build:\n    runs-on: builders\n    strategy:\n      matrix: {os: [debian, alpine]}\n"
        "    steps:\n      - run: echo ${{ matrix.os }}\n"
        "  deploy:\n    needs: build\n    runs-on: {group: web, each: true}\n    steps:\n      - uses: sleep@v1\n        with: {seconds: 2}\n",
        encoding="utf-8",
    )
    result = waterflow("dry-run", str(workflow))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("level 1:") < out.index("job build") < out.index("level 2:") < out.index("job deploy")
    assert "group builders" in out and "every agent of group web" in out
    assert "matrix: 2 combinations" in out and "os=debian" in out and "os=alpine" in out
    assert "sleep@v1" in out and "seconds=2" in out
    plan = json.loads(waterflow("dry-run", "--format", "json", str(workflow)).stdout)
    assert list(plan["jobs"]) == ["build", "deploy"]


def test_dry_run_of_a_broken_file_exits_2() -> None:
    result = waterflow("dry-run", str(CASES / "matrix.yml"))
    assert result.returncode == 2 and "[matrix]" in result.stderr and result.stdout == ""


def test_validate_reads_called_workflows_and_shows_their_lines(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "say.yml").write_text(
        "inputs:\n  text: {required: true}\njobs:\n  echo:\n    runs-on: local\n    steps:\n      - run: echo ${{ inputs.txt }}\n")
    (tmp_path / "main.yml").write_text("jobs:\n  hello:\n    uses: ./templates/say.yml\n    with: {text: hi}\n")
    result = waterflow("validate", str(tmp_path / "main.yml"))
    assert result.returncode == 2
    assert "templates/say.yml:7:23: input 'txt' is not declared [undefined-input]" in result.stderr
    assert "      - run: echo ${{ inputs.txt }}" in result.stderr
    (tmp_path / "templates" / "say.yml").write_text(
        "inputs:\n  text: {required: true}\njobs:\n  echo:\n    runs-on: local\n    steps:\n      - env: {TEXT: '${{ inputs.text }}'}\n        run: echo \"$TEXT\"\n")
    result = waterflow("dry-run", str(tmp_path / "main.yml"))
    assert result.returncode == 0, result.stderr
    assert "job hello-echo (hello / echo) → group local" in result.stdout
