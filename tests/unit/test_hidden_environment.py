"""A service's environment (NATS credentials, the API key) is not readable by other processes of
the same non-root user, such as a step's script (issue #13 row 3: a step read the services'
``/proc/<pid>/environ``). Real processes (forked, then switched to user ``nobody``)."""

from __future__ import annotations

import ctypes  # imported before the fork: user nobody may not be able to read this Python's library
import os
import signal
import time

import pytest

from waterflow_common.runner import PR_SET_DUMPABLE, hide_environment

NOBODY = 65534


def _as_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _start_service(hide: bool) -> int:
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the "service": a process of user nobody holding a secret in its environment
        try:
            os.environ["WATERFLOW_NATS_PASSWORD"] = "s3cret"
            _as_nobody()
            # Changing user made this fork non-dumpable by itself: be as a process that user
            # started normally (dumpable), then do what every service does at start.
            ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
            if hide:
                hide_environment()
            os.write(ready_w, b"1")
            time.sleep(30)
        finally:
            os._exit(0)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    return pid


def _can_read_environ_as_nobody(pid: int) -> bool:
    reader = os.fork()
    if reader == 0:  # the "step": another process of the same user
        try:
            _as_nobody()
            with open(f"/proc/{pid}/environ", "rb") as handle:
                handle.read()
            os._exit(0)
        except PermissionError:
            os._exit(1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(reader, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), f"reader failed unexpectedly ({code})"
    return code == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch processes to user nobody")
@pytest.mark.parametrize("hide", [True, False], ids=["hidden", "control"])
def test_a_service_environment_is_hidden_from_the_same_user(hide: bool) -> None:
    service = _start_service(hide)
    try:
        assert _can_read_environ_as_nobody(service) is (not hide)
    finally:
        os.kill(service, signal.SIGKILL)
        os.waitpid(service, 0)
