"""The nodes every agent has, in the order ``waterflow node list`` shows them."""

from __future__ import annotations

from .base import Node
from .checkout import Checkout
from .compose import ComposeDown, ComposeUp
from .config import ConfigEdit, EnvSet
from .containers import Docker
from .files import FileDownload, FileUpload
from .http import Http
from .shell import Run, Script, Shell
from .sleep import Sleep
from .wait_for import WaitFor

BUILTIN_NODES: tuple[type[Node], ...] = (
    Shell, Run, Script, Http, WaitFor, FileUpload, FileDownload, Docker, ComposeUp, ComposeDown,
    Checkout, EnvSet, ConfigEdit, Sleep,
)

SCHEDULER_NODES = frozenset({"sleep"})
"""Nodes the scheduler executes itself (durable timers); listed for the compiler and the docs."""
