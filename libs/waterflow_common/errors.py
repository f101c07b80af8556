"""One root error; the type says who is at fault and whether trying again can help.

Modelled on httpx (one root, a small tree) and temporalio (``non_retryable`` in the type).
"""


class WaterflowError(Exception):
    """Root of every error Waterflow raises on purpose."""


class UserError(WaterflowError):
    """Bad input from a user: shown as a message, never with a traceback."""


class RetryableError(WaterflowError):
    """A step failed in a way another attempt may fix (network blip, busy resource)."""


class NonRetryableError(WaterflowError):
    """A step failed in a way no retry will fix (bad parameters, missing file)."""


class InfrastructureError(WaterflowError):
    """NATS or another service is unreachable; services retry these themselves."""
