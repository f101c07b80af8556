"""A service logs an exception as a plain traceback: no frame's local variables (one may hold a
secret), and no rich rendering (it cost ~150 ms of a service's event loop per exception)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
from waterflow_common.log import configure, get_logger
configure("info", service="api")
def resolve():
    secret_value = "hunter2-" + "do-not-log"
    raise RuntimeError("boom")
try:
    resolve()
except RuntimeError:
    get_logger("t").exception("request.failed", path="/v1/x")
"""


def test_an_exception_is_logged_without_locals() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "request.failed" in done.stderr and "RuntimeError: boom" in done.stderr
    assert "Traceback (most recent call last)" in done.stderr  # the plain form
    assert "hunter2-do-not-log" not in done.stderr  # the value a local held (rich's default shows it)
