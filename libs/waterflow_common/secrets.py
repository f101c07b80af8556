"""Secrets: where ``${{ secrets.NAME }}`` comes from, and how values are kept out of sight.

``SecretProvider`` is the seam the seeds ask for (plug in Vault or a cloud secret manager by
subclassing it); the default keeps secrets in the KV bucket ``wf_secrets``. Values are written
through the API (never read back through it), resolved by the scheduler only when a step that
references them is dispatched, and masked (``***``) by the agent in every log line and output.

What is *not* protected by Waterflow itself: the NATS store. A dispatched task carries the values
it needs until an agent acknowledges it; enable JetStream encryption at rest and TLS in production.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
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


MIN_MASKED_LENGTH = 3
"""Shorter "secrets" are not masked: hiding every 'a' or '10' would mangle logs and reveal more."""


def _forms(value: str) -> set[str]:
    """The forms of a secret that are masked, as GitHub's runner masks them: the value, each line
    of a multi-line value, its JSON- and URL-escaped forms, its base64 (also as it appears inside
    a longer base64 text, shifted by one or two bytes) and hex encodings."""
    forms = {value, *(line.strip() for line in value.splitlines())}
    forms.add(json.dumps(value)[1:-1])
    forms.add(urllib.parse.quote(value, safe=""))
    raw = value.encode()
    for shift, start in ((0, 0), (1, 2), (2, 3)):
        # Inside a longer text the secret starts 0, 1 or 2 bytes into a 3-byte group: keep the
        # characters that depend on its bytes alone (not the bytes before it, nor a partial last group).
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        forms.add(encoded[start:(len(raw) + shift) // 3 * 4])
    forms.add(raw.hex())
    forms.add(raw.hex().upper())
    return {f for f in forms if len(f) >= MIN_MASKED_LENGTH}


class Masker:
    """Replaces every form of every secret with ``***`` (longest first, so a secret that contains
    another one is hidden whole). The one masking rule, used by the scheduler (errors), the
    agent (logs, outputs, errors) and nodes; ``add`` takes ``::add-mask::`` values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: list[str] = []
        for value in secrets:
            self.add(value)

    def add(self, value: str) -> None:
        if not value or len(value) < MIN_MASKED_LENGTH:
            return
        new = _forms(value) - set(self._forms)
        if new:
            self._forms = sorted({*self._forms, *new}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


def mask(text: str, values: Iterable[str]) -> str:
    """``text`` with every form of each secret value replaced by ``***``."""
    return Masker(values)(text)


def mask_mapping(values: Mapping[str, str], secrets: Iterable[str]) -> dict[str, str]:
    masker = Masker(secrets)
    return {key: masker(value) for key, value in values.items()}
