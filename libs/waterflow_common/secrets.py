"""Secrets: where ``${{ secrets.NAME }}`` comes from, and how values are kept out of sight.

``SecretProvider`` is the seam the seeds ask for (plug in Vault or a cloud secret manager by
subclassing it); the default keeps secrets in the KV bucket ``wf_secrets``. Values are written
through the API (never read back through it), resolved by the scheduler only when a step that
references them is dispatched, and masked (``***``) by the agent in every log line and output.

What is *not* protected by Waterflow itself: the NATS store. A dispatched task carries the values
it needs until an agent acknowledges it; enable JetStream encryption at rest and TLS in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MASK = "***"


class SecretProvider:
    """Base class: override ``get`` (and ``names`` if listing makes sense for your store)."""

    async def get(self, names: Iterable[str]) -> dict[str, str]:
        """Values of the secrets that exist among ``names`` (missing ones are simply absent)."""
        return {}

    async def names(self) -> list[str]:
        return []


class KvSecretProvider(SecretProvider):
    """Secrets in the ``wf_secrets`` KV bucket, one key per secret."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, names: Iterable[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for name in names:
            try:
                entry = await self.kv.get(name)
            except KeyNotFoundError:
                continue
            if entry.value is not None:
                values[name] = entry.value.decode()
        return values

    async def names(self) -> list[str]:
        try:
            return sorted(await self.kv.keys())
        except NoKeysError:
            return []

    async def put(self, name: str, value: str) -> None:
        check_name(name)
        await self.kv.put(name, value.encode())

    async def delete(self, name: str) -> bool:
        check_name(name)
        try:
            await self.kv.get(name)
        except KeyNotFoundError:
            return False
        await self.kv.purge(name)
        return True


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ValueError(f"invalid secret name {name!r}: use letters, digits and '_', not starting with a digit")
    return name


def mask(text: str, values: Iterable[str]) -> str:
    """Replace every occurrence of each secret value (longest first) with ``***``."""
    for value in sorted((v for v in values if v), key=len, reverse=True):
        if len(value) >= 3:  # masking "a" would mangle every line and reveal more than it hides
            text = text.replace(value, MASK)
    return text


def mask_mapping(values: Mapping[str, str], secrets: Iterable[str]) -> dict[str, str]:
    secrets = list(secrets)
    return {key: mask(value, secrets) for key, value in values.items()}
