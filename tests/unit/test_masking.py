"""Secrets are masked in every form GitHub's runner masks (its SecretMasker and value encoders):
the value, each line of a multi-line value, JSON- and URL-escaped forms, base64 at any byte
offset inside a longer text, and hex (issue #13 row 7)."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from waterflow_common.secrets import MASK, Masker, mask

SECRET = "hunter2-Sup3r$ecret"


@pytest.mark.parametrize("form", [
    SECRET,
    json.dumps(SECRET)[1:-1],
    urllib.parse.quote(SECRET, safe=""),
    SECRET.encode().hex(),
])
def test_escaped_and_encoded_forms_are_masked(form: str) -> None:
    assert form not in mask(f"before {form} after", [SECRET])


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b"abcd"])
def test_base64_of_the_secret_inside_longer_text_is_masked_at_any_offset(prefix: bytes) -> None:
    encoded = base64.b64encode(prefix + SECRET.encode() + b" and more").decode()
    masked = mask(encoded, [SECRET])
    assert MASK in masked
    hidden = len(encoded) - len(masked.replace(MASK, ""))
    assert hidden >= len(SECRET) * 4 / 3 - 8  # all of the secret but the bytes sharing a group with its neighbours


def test_each_line_of_a_multi_line_secret_is_masked_on_its_own() -> None:
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAo\n-----END KEY-----"
    log = ["cat key.pem:", *key.splitlines()]
    masked = [mask(line, [key]) for line in log]
    assert masked == ["cat key.pem:", MASK, MASK, MASK, MASK]


def test_short_values_are_not_masked_and_longer_secrets_win() -> None:
    masker = Masker(["ab", "token", "token-extended"])
    assert masker("ab token-extended token") == f"ab {MASK} {MASK}"
