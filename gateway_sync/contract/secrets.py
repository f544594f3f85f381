"""The keys that protect upstream credentials, shared by the portal (which encrypts them)
and the workers (which decrypt them from snapshots). Pure Python: no Django."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derived_upstream_key(secret_key: str) -> bytes:
    """The Fernet key used when no UPSTREAM_SECRET_KEYS are configured (embedded mode)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"upstream-secrets")
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def upstream_fernet(keys: Sequence[str], secret_key: str) -> MultiFernet:
    """The configured keys (newest first: it encrypts, all decrypt), else the derived one."""
    material = [key.encode() for key in keys] or [derived_upstream_key(secret_key)]
    return MultiFernet([Fernet(key) for key in material])
