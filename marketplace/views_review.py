"""The review queue in the admin console (platform staff)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.auth import request_user
from accounts.decorators import staff_required
from config.htmx import redirect
from marketplace import selectors, services
from marketplace.forms import RejectForm
from marketplace.models import ProductVersion


@staff_required
def review_queue(request: HttpRequest) -> HttpResponse:
    return render(
        request, "marketplace/review_queue.html", {"versions": selectors.review_queue(), "reject_form": RejectForm()}
    )


@staff_required
@require_POST
def review_decide(request: HttpRequest, version_id: int, decision: str) -> HttpResponse:
    version = get_object_or_404(ProductVersion.objects.select_related("product"), pk=version_id)
    user = request_user(request)
    try:
        if decision == "approve":
            services.version_approve(actor=user, version=version)
            messages.success(request, f"Published {version.product.name} {version.version}.")
        elif decision == "reject":
            form = RejectForm(request.POST)
            if not form.is_valid():
                raise ValidationError("Tell the provider why: the reason is emailed to them.")
            services.version_reject(actor=user, version=version, reason=form.cleaned_data["reason"])
            messages.success(request, f"Sent {version.product.name} {version.version} back to the provider.")
        else:
            return HttpResponse("Unknown decision.", status=404)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect(request, reverse("review_queue"))
