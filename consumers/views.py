from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def consumer_home(request: HttpRequest) -> HttpResponse:
    """The consumer area: the current organization's apps, keys and subscriptions."""
    return render(request, "consumers/consumer_home.html")
