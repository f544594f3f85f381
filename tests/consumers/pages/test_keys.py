"""An app's keys on its page: created and shown once (only a hash is stored), rotated
with an overlap (the new key shown once, the old one working until the overlap ends),
revoked; and who may do it."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.tokens import keyed_hash
from consumers import services
from consumers.models import ApiKey
from tests.conftest import client_for
from tests.consumers.pages.helpers import text

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _plaintext(page: str) -> str:
    match = re.search(r'value="(sk-[A-Za-z0-9]{48})" id="new-key"', page)
    assert match, "the new key is shown in the copy-once dialog"
    return match.group(1)


def test_a_new_key_is_shown_once_and_only_its_hash_is_stored(owner, app):
    client = client_for(owner)
    response = client.post(f"/consumer/apps/{app.pk}/keys/", {"name": "server", "expires_at": ""}, **HTMX)
    assert response.status_code == 201
    page = text(response)
    assert page.startswith('<div id="keys">')  # the partial, for the htmx swap
    plaintext = _plaintext(page)
    assert "<dialog open" in page
    assert "you will not see it again" in page
    assert 'data-copy="#new-key"' in page
    key = ApiKey.objects.get(app=app)
    assert key.key_hash == keyed_hash(plaintext)
    assert key.prefix == plaintext[:11]
    stored = [str(v) for v in ApiKey.objects.filter(pk=key.pk).values().get().values()]
    assert all(plaintext not in value for value in stored)
    again = text(client.get(f"/consumer/apps/{app.pk}/"))
    assert plaintext not in again
    assert plaintext[11:20] not in again
    assert f"<code>{key.prefix}…</code>" in again
    assert "<dialog" not in again


def test_the_key_list_shows_prefix_status_last_use_and_expiry(owner, app):
    expires = timezone.now() + dt.timedelta(days=30)
    key, _ = services.api_key_create(actor=owner, app=app, name="ci", expires_at=expires)
    page = text(client_for(owner).get(f"/consumer/apps/{app.pk}/"))
    row = page[page.index(f'id="key-{key.pk}"') :]
    row = row[: row.index("</tr>")]
    assert f"{key.prefix}…" in row
    assert "key-active" in row
    assert "never" in row  # never used
    assert expires.strftime("%Y-%m-%d %H:%M") in row
    assert "all subscribed products" in row


def test_a_key_can_be_limited_to_subscribed_products(owner, app, vendor_product, free_plan):
    services.subscription_request(actor=owner, app=app, product=vendor_product, plan=free_plan)
    client = client_for(owner)
    assert "Only for" in text(client.get(f"/consumer/apps/{app.pk}/"))
    response = client.post(f"/consumer/apps/{app.pk}/keys/", {"name": "llm", "products": [vendor_product.pk]})
    assert response.status_code == 201
    assert list(ApiKey.objects.get(app=app).products.all()) == [vendor_product]


def test_a_key_cannot_be_limited_to_a_product_the_app_is_not_subscribed_to(
    owner, app, vendor_product, free_plan, acme_product
):
    services.subscription_request(actor=owner, app=app, product=vendor_product, plan=free_plan)
    response = client_for(owner).post(f"/consumer/apps/{app.pk}/keys/", {"name": "llm", "products": [acme_product.pk]})
    assert response.status_code == 400
    assert f"Select a valid choice. {acme_product.pk} is not one of the available choices." in text(response)
    assert not ApiKey.objects.exists()


def test_a_key_needs_a_name_and_a_future_expiry(owner, app):
    client = client_for(owner)
    response = client.post(f"/consumer/apps/{app.pk}/keys/", {"name": "", "expires_at": ""})
    assert response.status_code == 400
    assert "This field is required." in text(response)
    past = (timezone.now() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/consumer/apps/{app.pk}/keys/", {"name": "old", "expires_at": past})
    assert response.status_code == 400
    assert "The expiry must be in the future." in text(response)
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(("persona", "status"), [("member", 201), ("outsider", 404), ("staff", 403)])
def test_who_creates_keys(request, app, persona, status):
    response = client_for(request.getfixturevalue(persona)).post(f"/consumer/apps/{app.pk}/keys/", {"name": "k"})
    assert response.status_code == status
    assert ApiKey.objects.filter(app=app).exists() == (status == 201)


def test_rotating_shows_the_new_key_once_and_keeps_the_old_one_for_the_overlap(owner, app):
    old, old_plaintext = services.api_key_create(actor=owner, app=app, name="server")
    client = client_for(owner)
    before = timezone.now()
    response = client.post(f"/consumer/apps/{app.pk}/keys/{old.pk}/rotate/", {"overlap": "86400"}, **HTMX)
    assert response.status_code == 201
    page = text(response)
    plaintext = _plaintext(page)
    assert plaintext != old_plaintext
    old.refresh_from_db()
    new = old.replaced_by
    assert new is not None
    assert new.key_hash == keyed_hash(plaintext)
    assert old.status == "rotating"
    assert old.is_usable  # the old key still works...
    assert before + dt.timedelta(hours=24) <= old.expires_at <= timezone.now() + dt.timedelta(hours=24)
    assert f"keeps working until {old.expires_at:%Y-%m-%d %H:%M} UTC" in page  # ...until then
    again = text(client.get(f"/consumer/apps/{app.pk}/"))
    assert plaintext not in again
    assert "key-rotating" in again
    assert AuditEvent.objects.filter(action="api_key.rotate", target_id=str(old.pk)).exists()


def test_rotating_without_overlap_stops_the_old_key_now(owner, app):
    old, _ = services.api_key_create(actor=owner, app=app, name="server")
    response = client_for(owner).post(f"/consumer/apps/{app.pk}/keys/{old.pk}/rotate/", {"overlap": "0"})
    assert response.status_code == 201
    assert "stopped working now" in text(response)
    old.refresh_from_db()
    assert not old.is_usable


def test_rotating_a_revoked_key_says_why_not(owner, app):
    key, _ = services.api_key_create(actor=owner, app=app, name="server")
    services.api_key_revoke(actor=owner, key=key)
    response = client_for(owner).post(f"/consumer/apps/{app.pk}/keys/{key.pk}/rotate/", {"overlap": "3600"}, **HTMX)
    assert response.status_code == 400
    page = text(response)
    assert page.startswith('<div id="keys">')
    assert "This key is revoked; create a new key instead of rotating it." in page
    assert ApiKey.objects.count() == 1


def test_rotating_needs_one_of_the_offered_overlaps(owner, app):
    key, _ = services.api_key_create(actor=owner, app=app, name="server")
    response = client_for(owner).post(f"/consumer/apps/{app.pk}/keys/{key.pk}/rotate/", {"overlap": "99999999"})
    assert response.status_code == 400
    assert "Choose how long the old key keeps working." in text(response)
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize(("persona", "status"), [("member", 201), ("outsider", 404), ("staff", 403)])
def test_who_rotates_keys(request, owner, app, persona, status):
    key, _ = services.api_key_create(actor=owner, app=app, name="server")
    response = client_for(request.getfixturevalue(persona)).post(
        f"/consumer/apps/{app.pk}/keys/{key.pk}/rotate/", {"overlap": "3600"}
    )
    assert response.status_code == status
    assert ApiKey.objects.count() == (2 if status == 201 else 1)


def test_a_key_of_another_app_is_not_found_under_this_one(owner, organization, app):
    other = services.app_create(actor=owner, organization=organization, name="Other")
    key, _ = services.api_key_create(actor=owner, app=other, name="server")
    response = client_for(owner).post(f"/consumer/apps/{app.pk}/keys/{key.pk}/revoke/")
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_revoking_a_key_stops_it(owner, app):
    key, _ = services.api_key_create(actor=owner, app=app, name="server")
    client = client_for(owner)
    page = text(client.get(f"/consumer/apps/{app.pk}/"))
    assert 'hx-confirm="Revoke server' in page
    response = client.post(f"/consumer/apps/{app.pk}/keys/{key.pk}/revoke/", **HTMX)
    assert response.status_code == 200
    assert f"Revoked server ({key.prefix}…). It no longer works." in text(response)
    key.refresh_from_db()
    assert key.status == "revoked"
    assert "key-revoked" in text(response)
    assert AuditEvent.objects.filter(action="api_key.revoke", target_id=str(key.pk)).exists()


@pytest.mark.parametrize(("persona", "status"), [("member", 200), ("outsider", 404), ("staff", 403)])
def test_who_revokes_keys(request, owner, app, persona, status):
    key, _ = services.api_key_create(actor=owner, app=app, name="server")
    response = client_for(request.getfixturevalue(persona)).post(f"/consumer/apps/{app.pk}/keys/{key.pk}/revoke/")
    assert response.status_code == status
    key.refresh_from_db()
    assert (key.revoked_at is not None) == (status == 200)
