"""Three small htmx helpers, so that one view serves both the full page and its partial."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django_htmx.http import HttpResponseClientRedirect


def render_page_or_partial(
    request: HttpRequest, page: str, partial: str, context: dict[str, Any], *, status: int = 200
) -> HttpResponse:
    """Render ``partial`` for an htmx request that targets part of the page, else ``page``
    (which includes ``partial``)."""
    htmx = getattr(request, "htmx", None)
    template = partial if htmx and not htmx.boosted else page
    return render(request, template, context, status=status)


def redirect(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect that htmx follows as a full navigation rather than swapping the target."""
    if getattr(request, "htmx", None):
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


def current_url(request: HttpRequest) -> str:
    """The page the user sees: for htmx requests, the browser's URL, not the endpoint's."""
    htmx = getattr(request, "htmx", None)
    if htmx and htmx.current_url_abs_path:
        return str(htmx.current_url_abs_path)
    return request.get_full_path()
