"""The test overlay: the real settings, pointed at the test PostgreSQL and Redis.

``make test`` exports DATABASE_URL and REDIS_URL; without them the tests use the
machine's default PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/platform")
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

from config.settings import *  # noqa: F403
from config.settings import DATABASES

# Each test runs in a transaction; a persistent connection would outlive it for nothing.
DATABASES["default"]["CONN_MAX_AGE"] = 0
# TEST_DB_NAME lets two checkouts run their suites at once on one server.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DB_NAME", "test_platform")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Rate limits are tested where they matter; elsewhere they would make tests order-dependent.
ACCOUNT_RATE_LIMITS = False
# The tests' upstreams (MCP servers, OpenAPI documents) run on loopback.
SSRF_ALLOW_LOOPBACK = True
UPSTREAM_SECRET_KEYS = [
    "dGVzdC1vbmx5LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE=",
]
# Snapshots published by tests go to a throwaway folder, never to var/.
SNAPSHOT_DIR = Path(tempfile.mkdtemp(prefix="platform-test-snapshots-"))
