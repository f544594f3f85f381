from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.decorators import staff_required
from gateway_sync import selectors


@staff_required
def console_home(request: HttpRequest) -> HttpResponse:
    """The admin console (platform staff only): the platform at a glance and its audit trail."""
    context = {**selectors.console_overview(), "events": selectors.recent_audit_events()}
    return render(request, "gateway_sync/console_home.html", context)
