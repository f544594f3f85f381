from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def provider_home(request: HttpRequest) -> HttpResponse:
    """The provider area: what the current organization offers on the marketplace."""
    return render(request, "marketplace/provider_home.html")
