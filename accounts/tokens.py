"""Generation and keyed hashing of bearer secrets (API tokens, invitation tokens).

A secret is shown once and never stored: the database keeps ``keyed_hash(secret)``,
an HMAC-SHA256 under ``settings.KEY_HASH_PEPPER``, so a stolen database dump alone
does not let anyone test guesses offline.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

from django.conf import settings

_ALPHABET = string.ascii_letters + string.digits


def keyed_hash(secret: str) -> str:
    return hmac.new(settings.KEY_HASH_PEPPER.encode(), secret.encode(), hashlib.sha256).hexdigest()


def random_string(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_prefixed_token(kind: str) -> tuple[str, str]:
    """Return (prefix, token). The token is ``{kind}_{id}_{secret}`` with a 10-character
    lookup id and a 40-character secret (about 238 bits); the prefix is ``{kind}_{id}``."""
    prefix = f"{kind}_{random_string(10)}"
    return prefix, f"{prefix}_{random_string(40)}"


def prefix_of(token: str) -> str | None:
    """The lookup prefix of a token shaped like ``new_prefixed_token``'s, else None."""
    parts = token.split("_")
    if len(parts) != 3 or not all(parts):
        return None
    return f"{parts[0]}_{parts[1]}"
