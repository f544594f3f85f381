"""Error pages. Under /api/ they answer problem+json, elsewhere an HTML page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import loader

from config.api.errors import problem_response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _is_api(request):
        return problem_response(
            request, 403, "CSRF verification failed. Send the X-CSRFToken header.", code="csrf_failed"
        )
    return render(
        request, "errors/403.html", {"reason": "Your session form expired. Reload the page and try again."}, status=403
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return problem_response(request, 400, "The request could not be understood.", code="bad_request")
    return render(request, "errors/400.html", status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return problem_response(
            request, 403, "You do not have permission to perform this action.", code="permission_denied"
        )
    return render(request, "errors/403.html", status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return problem_response(request, 404, "No such endpoint or object.", code="not_found")
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return problem_response(request, 500, "An unexpected error occurred; it has been logged.", code="server_error")
    # No request context: the failure may be in a context processor.
    return HttpResponse(loader.get_template("errors/500.html").render(), status=500)
