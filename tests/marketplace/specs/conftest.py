"""Shared helpers for the spec-tool tests (no database: nothing here touches Django models)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.fixture
def petstore_yaml() -> str:
    return fixture_text("petstore-3.0.yaml")


@pytest.fixture
def weather_json() -> str:
    return fixture_text("weather-3.1.json")
