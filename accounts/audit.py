"""The request context that audit events record (the client's IP address).

Services take the acting user as an argument but know nothing of HTTP; the middleware
puts the request's address into a context variable for ``audit_record`` to read.
"""

from __future__ import annotations

from contextvars import ContextVar

current_ip: ContextVar[str | None] = ContextVar("audit_current_ip", default=None)
