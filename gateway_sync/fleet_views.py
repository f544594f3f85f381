"""Admin-console pages for the fleet and the snapshots: which worker runs which version,
the history, a readable diff between two versions, and rollback."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.auth import request_user
from accounts.decorators import staff_required
from config.htmx import redirect, render_page_or_partial
from gateway_sync import fleet
from gateway_sync.contract import codec
from gateway_sync.models import SnapshotRecord
from gateway_sync.selectors import config_generation
from gateway_sync.snapshot_diff import diff_snapshots


@staff_required
def fleet_page(request: HttpRequest) -> HttpResponse:
    """Workers (refreshed every few seconds by htmx) and the latest snapshots."""
    context = {
        "workers": fleet.fleet_status(),
        "snapshots": SnapshotRecord.objects.defer("payload")[:30],
        "generation": config_generation(),
    }
    return render_page_or_partial(request, "gateway_sync/fleet.html", "gateway_sync/_workers.html", context)


@staff_required
def snapshot_diff_page(request: HttpRequest, version: int) -> HttpResponse:
    """What changed in ``version`` relative to ``?against=`` (default: the version before)."""
    new = get_object_or_404(SnapshotRecord, version=version)
    against = request.GET.get("against", "")
    if against.isdigit():
        old = get_object_or_404(SnapshotRecord, version=int(against))
    else:
        old = SnapshotRecord.objects.filter(version__lt=version).order_by("-version").first() or new
    diff = diff_snapshots(codec.decode_snapshot(bytes(old.payload)), codec.decode_snapshot(bytes(new.payload)))
    return render(request, "gateway_sync/snapshot_diff.html", {"old": old, "new": new, "diff": diff})


@staff_required
@require_POST
def snapshot_rollback(request: HttpRequest, version: int) -> HttpResponse:
    try:
        record = fleet.snapshot_rollback(actor=request_user(request), version=version)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Snapshot {version} republished as version {record.version}.")
    return redirect(request, reverse("fleet"))
