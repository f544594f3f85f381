"""A logging filter that redacts anything shaped like a secret we issue.

Keys and tokens must never be logged; code is written not to, and this filter is the net
under it, for a third-party library that logs a header or a URL. It rewrites a record's
message (after %-formatting) and its exception text.
"""

from __future__ import annotations

import logging
import re

# API keys (sk-…), personal API tokens (pat_…_…), and any bearer credential.
SECRET_PATTERNS = [
    # Not \b: a key after a digit or "_" (URL-encoded "Bearer%20sk-…", "api_key_sk-…") must
    # be caught too; a preceding letter ("task-…", "disk-…") is not a key.
    (re.compile(r"(?<![A-Za-z])sk-([A-Za-z0-9]{8})[A-Za-z0-9]{16,}"), r"sk-\1…[redacted]"),
    (re.compile(r"\b(pat_[A-Za-z0-9]{10})_[A-Za-z0-9]{16,}"), r"\1_…[redacted]"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1[redacted]"),
    (re.compile(r"(?i)(x-api-key['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9._~+/=-]{8,}"), r"\1[redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
