"""Encryption at rest for upstream credentials.

Secrets are Fernet tokens (AES-128-CBC + HMAC-SHA256) under the keys in
``settings.UPSTREAM_SECRET_KEYS``: the first key encrypts, all of them decrypt, so keys
rotate by prepending a new one (and re-encrypting with ``secret_reencrypt``). Without
configured keys (embedded mode), one key is derived from SECRET_KEY.
"""

from __future__ import annotations

import functools

from cryptography.fernet import InvalidToken, MultiFernet
from django.conf import settings

from gateway_sync.contract.secrets import upstream_fernet


class SecretDecryptionError(Exception):
    """A stored secret that none of the configured keys can decrypt."""


@functools.cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    return upstream_fernet(keys, secret_key)


def _box() -> MultiFernet:
    return _fernet(tuple(settings.UPSTREAM_SECRET_KEYS), settings.SECRET_KEY)


def secret_encrypt(plaintext: str) -> str:
    return "" if not plaintext else _box().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _box().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            "No configured key decrypts this secret (were UPSTREAM_SECRET_KEYS changed?)"
        ) from None


def secret_reencrypt(token: str) -> str:
    """The same secret under the current first key."""
    return "" if not token else _box().rotate(token.encode()).decode()
