"""The net under "keys are never logged": config.logging.RedactSecretsFilter rewrites any
API key in a record's message, arguments and exception text, and the logging
configuration puts it on every handler a record can reach. (The services themselves
log no key at all: see tests/consumers/api/test_key_secrecy.py.)"""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from django.conf import settings
from pytest_django.fixtures import SettingsWrapper

from config.logging import RedactSecretsFilter, redact
from consumers.services.keys import new_api_key


@pytest.fixture
def key() -> str:
    return new_api_key()


def log_through_filter(logger_name: str, emit: object) -> str:
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"]))
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        assert callable(emit)
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_key_in_a_message_its_arguments_or_an_exception_is_redacted_keeping_its_prefix(key: str) -> None:
    def emit(logger: logging.Logger) -> None:
        logger.warning(f"sent {key}")
        logger.warning("sent %s to %s", key, "upstream")
        logger.warning("headers %r", {"x-api-key": key, "authorization": f"Bearer {key}"})
        try:
            raise RuntimeError(f"upstream refused {key}")
        except RuntimeError:
            logger.exception("call failed")

    output = log_through_filter("tests.redaction", emit)

    assert key not in output
    assert key[11:] not in output
    assert output.count(f"{key[:11]}…[redacted]") >= 3
    assert "RuntimeError: upstream refused sk-" in output


def test_the_project_handler_carries_the_filter() -> None:
    console = settings.LOGGING["handlers"]["console"]

    assert console["filters"] == ["redact_secrets"]
    assert settings.LOGGING["filters"]["redact_secrets"]["()"] == "config.logging.RedactSecretsFilter"
    assert settings.LOGGING["root"]["handlers"] == ["console"]


@pytest.mark.parametrize("template", ["GET /v1/chat?auth=Bearer%20{key}", "api_key_{key}"])
def test_a_key_glued_to_other_characters_is_redacted_too(key: str, template: str) -> None:
    assert key[11:] not in redact(template.format(key=key))


def _handlers_reached(logger_name: str) -> list[logging.Handler]:
    """The handlers a record of ``logger_name`` reaches, as logging walks the tree
    (pytest's own capture handlers left out)."""
    handlers: list[logging.Handler] = []
    logger: logging.Logger | None = logging.getLogger(logger_name)
    while logger is not None:
        handlers += [h for h in logger.handlers if not type(h).__module__.startswith("_pytest")]
        if not logger.propagate:
            break
        logger = logger.parent
    return handlers


@pytest.mark.parametrize("logger_name", ["django.request", "django.server"])
def test_every_handler_a_django_record_reaches_redacts_keys(
    key: str, logger_name: str, settings: SettingsWrapper
) -> None:
    settings.DEBUG = True  # as in development, where Django's console handler prints
    leaking = []
    for handler in _handlers_reached(logger_name):
        record = logging.LogRecord(logger_name, logging.ERROR, __file__, 1, '"GET /?key=%s HTTP/1.1" 401', (key,), None)
        if handler.filter(record) and key in handler.format(record):
            leaking.append(type(handler).__name__)

    assert leaking == []
