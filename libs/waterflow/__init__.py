"""Waterflow: the ``waterflow`` command and the Python SDK.

    from waterflow import Client
"""

from .client import ApiError, Client

__all__ = ["ApiError", "Client"]
__version__ = "0.1.0"
