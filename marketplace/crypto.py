"""Encryption at rest for upstream credentials.

Secrets are Fernet tokens (AES-128-CBC + HMAC-SHA256) under the keys in
``settings.UPSTREAM_SECRET_KEYS``: the first key encrypts, all of them decrypt, so keys
rotate by prepending a new one (and re-encrypting with ``secret_reencrypt``). Without
configured keys (embedded mode), one key is derived from SECRET_KEY.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretDecryptionError(Exception):
    """A stored secret that none of the configured keys can decrypt."""


def _derived_key() -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"upstream-secrets")
    return base64.urlsafe_b64encode(hkdf.derive(settings.SECRET_KEY.encode()))


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    material = [key.encode() for key in keys] or [_derived_key()]
    return MultiFernet([Fernet(key) for key in material])


def _box() -> MultiFernet:
    return _fernet(tuple(settings.UPSTREAM_SECRET_KEYS))


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
