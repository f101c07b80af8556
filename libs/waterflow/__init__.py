"""Waterflow: the ``waterflow`` command and the Python SDK.

    from waterflow import Client          # synchronous (standard library only)
    from waterflow import AsyncClient     # asyncio (aiohttp)
"""

from .aio import AsyncClient
from .client import ApiError, Client

__all__ = ["ApiError", "AsyncClient", "Client"]
__version__ = "0.1.0"
