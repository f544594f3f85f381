"""Fixtures of the usage tests: events as a worker would emit them, a real Redis (db 12)
with a stream of its own per test, and a spool folder per test.

Acme (the shared personas) owns the app ``app`` and publishes ``acme_product``; Vendor
publishes ``vendor_product``, which Acme's app calls too."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pytest_django.fixtures import SettingsWrapper

from accounts.models import Organization, Role, User
from consumers import services
from consumers.models import ConsumerApp
from gateway_sync.contract.usage import UsageEvent
from marketplace.models import Product
from tests.consumers.pages.helpers import publish_model_api
from tests.factories import MembershipFactory

REDIS_URL = os.environ.get("USAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")


def make_event(**overrides: Any) -> UsageEvent:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "at": time.time(),
        "worker_id": "worker-1",
        "app_id": 1,
        "key_prefix": "sk_abc",
        "product_id": 1,
        "product_slug": "acme-llm",
        "version_id": 1,
        "protocol": "llm",
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "latency_ms": 12.5,
        "bytes_in": 100,
        "bytes_out": 400,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "cost_microusd": 300,
        **overrides,
    }
    return UsageEvent(**fields)


@pytest.fixture
def redis_client(settings: SettingsWrapper) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    stream = f"test:usage:{uuid.uuid4().hex}"
    settings.USAGE_STREAM_KEY = stream
    try:
        yield client
    finally:
        client.delete(stream)
        client.close()


@pytest.fixture
def stream(redis_client: redis.Redis, settings: SettingsWrapper) -> str:
    return str(settings.USAGE_STREAM_KEY)


@pytest.fixture
def spool(tmp_path: Path, settings: SettingsWrapper) -> Path:
    directory = tmp_path / "usage"
    directory.mkdir()
    settings.USAGE_SPOOL_DIR = directory
    return directory


@pytest.fixture
def app(owner: User, organization: Organization) -> ConsumerApp:
    return services.app_create(actor=owner, organization=organization, name="Support bot")


@pytest.fixture
def acme_product(owner: User, staff: User, organization: Organization) -> Product:
    return publish_model_api(owner=owner, staff=staff, organization=organization, slug="acme-llm")


@pytest.fixture
def vendor_product(staff: User) -> Product:
    vendor = MembershipFactory(
        organization__name="Vendor", organization__slug="vendor", role=Role.OWNER, user__email="owner@vendor.test"
    )
    return publish_model_api(owner=vendor.user, staff=staff, organization=vendor.organization, slug="vendor-llm")
