"""The provider's usage page, under /provider/usage/: requests, errors, tokens and cost
per product of the provider's organizations. Thin: the selector applies the rules."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.auth import request_user
from consumers import selectors_usage


@login_required
def provider_usage(request: HttpRequest) -> HttpResponse:
    user = request_user(request)
    product_slug = request.GET.get("product", "")
    summary = selectors_usage.provider_usage(user, product_slug=product_slug)
    context = {
        "summary": summary,
        "products": selectors_usage.provider_usage_products(user),
        "product_slug": product_slug,
    }
    return render(request, "consumers/usage_provider.html", context)
