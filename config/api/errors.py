"""One error format for the whole REST API: RFC 9457 problem details.

Every error the API returns has this shape, with ``application/problem+json``::

    {"type": "about:blank", "title": "Validation failed", "status": 400,
     "detail": "One or more fields are invalid.", "code": "invalid",
     "errors": {"name": ["This field is required."]}}

``errors`` appears only for validation errors, keyed by field (``non_field_errors`` for
the object as a whole).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

PROBLEM_CONTENT_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Permission denied",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Internal server error",
}


def problem(status_code: int, detail: str, *, code: str, title: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail,
        "code": code,
    }
    body.update(extra)
    return body


def _django_validation_to_drf(exc: DjangoValidationError) -> exceptions.ValidationError:
    if hasattr(exc, "error_dict"):
        return exceptions.ValidationError(exc.message_dict)
    return exceptions.ValidationError({"non_field_errors": exc.messages})


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every APIException, Http404, PermissionDenied and model
    ValidationError (raised by services' full_clean) becomes a problem document."""
    if isinstance(exc, DjangoValidationError):
        exc = _django_validation_to_drf(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        # Services word their refusals for the user ("sign in with x@y to accept it").
        exc = exceptions.PermissionDenied(str(exc) or None)

    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response

    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = problem(
            status.HTTP_400_BAD_REQUEST,
            "One or more fields are invalid.",
            code="invalid",
            title="Validation failed",
            errors=errors,
        )
    else:
        detail = exc.detail
        message = str(detail) if not isinstance(detail, (dict, list)) else str(exc.default_detail)
        codes = exc.get_codes()
        body = problem(response.status_code, message, code=codes if isinstance(codes, str) else exc.default_code)

    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def problem_response(request: HttpRequest, status_code: int, detail: str, *, code: str) -> JsonResponse:
    """A problem document for errors raised outside DRF (unknown URL, CSRF, crash)."""
    return JsonResponse(problem(status_code, detail, code=code), status=status_code, content_type=PROBLEM_CONTENT_TYPE)
