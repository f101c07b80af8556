"""``waterflow init`` writes files that work as written: the workflow validates without a
diagnostic and the agent.yml loads as agent settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from waterflow_agent.config import load_agent_settings
from waterflow_compiler import compile_workflow


def test_init_writes_a_valid_workflow_and_agent_config_and_never_overwrites(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "waterflow", "init", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    plan, diagnostics = compile_workflow((tmp_path / "workflow.yml").read_text(), "workflow.yml")
    assert plan is not None and diagnostics == []
    settings = load_agent_settings(config_path=str(tmp_path / "agent.yml"))
    assert settings.agent_name == "web-1" and settings.groups == ["web"]
    again = subprocess.run([sys.executable, "-m", "waterflow", "init", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
