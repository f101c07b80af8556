"""Waterflow: the ``waterflow`` command and the Python SDK.

    from waterflow import Client          # synchronous (standard library and msgspec)
    from waterflow import AsyncClient     # asyncio (aiohttp)

Both return the typed results of :mod:`waterflow.models` and raise :class:`ApiError` (or one of
its subclasses) carrying the API's RFC 7807 problem.
"""

from .aio import AsyncClient
from .client import ApiError, Client, Conflict, ConnectionFailed, InvalidRequest, NotFound, ServerError, Unauthorized
from .models import (
    Accepted, Agent, Event, Fired, Group, GroupList, JobInfo, LogLine, Node, Run, RunSummary, Secret, StepInfo,
    StoredFile, Submitted, Trigger, Validation,
)

__all__ = [
    "Accepted", "Agent", "ApiError", "AsyncClient", "Client", "Conflict", "ConnectionFailed", "Event", "Fired",
    "Group", "GroupList", "InvalidRequest", "JobInfo", "LogLine", "Node", "NotFound", "Run", "RunSummary", "Secret",
    "ServerError", "StepInfo", "StoredFile", "Submitted", "Trigger", "Unauthorized", "Validation",
]
__version__ = "0.1.0"
