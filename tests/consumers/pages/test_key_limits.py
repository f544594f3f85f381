"""A key's quotas on the app's page: optional on the new-key form, shown in the key list,
changed with the key's own quotas form (htmx swaps the key list); bad values are shown on
the form's fields; who may change them."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from consumers import services
from consumers.models import ApiKey
from gateway_sync.selectors import config_generation
from tests.conftest import client_for
from tests.consumers.pages.helpers import text

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
NONE = dict.fromkeys(ApiKey.REQUEST_WINDOWS)


def _row(page: str, key: ApiKey) -> str:
    row = page[page.index(f'id="key-{key.pk}"') :]
    return row[: row.index("</tr>")]


def test_a_key_is_created_with_the_quotas_filled_in(owner, app):
    response = client_for(owner).post(
        f"/consumer/apps/{app.pk}/keys/",
        {"name": "server", "requests_per_second": "5", "requests_per_minute": "", "requests_per_day": "10000"},
        **HTMX,
    )
    assert response.status_code == 201
    key = ApiKey.objects.get(app=app)
    assert key.limits == NONE | {"requests_per_second": 5, "requests_per_day": 10_000}
    row = _row(text(response), key)
    assert "5 requests/second" in row
    assert "10000 requests/day" in row


def test_the_new_key_form_offers_the_quotas(owner, app):
    page = text(client_for(owner).get(f"/consumer/apps/{app.pk}/"))
    form = page[page.index('id="key-form"') :]
    for field in ApiKey.REQUEST_WINDOWS:
        assert f'name="{field}"' in form
    assert "on top of the plans&#x27; limits" in form


def test_contradictory_quotas_on_a_new_key_are_shown_on_the_field(owner, app):
    response = client_for(owner).post(
        f"/consumer/apps/{app.pk}/keys/", {"name": "server", "requests_per_second": "20", "requests_per_minute": "10"}
    )
    assert response.status_code == 400
    assert "The requests per minute limit (10) is below the requests per second limit (20)." in text(response)
    assert not ApiKey.objects.exists()


def test_the_key_list_shows_each_keys_quotas(owner, app):
    limited, _ = services.api_key_create(actor=owner, app=app, name="limited", requests_per_minute=60)
    plain, _ = services.api_key_create(actor=owner, app=app, name="plain")
    page = text(client_for(owner).get(f"/consumer/apps/{app.pk}/"))
    assert "60 requests/minute" in _row(page, limited)
    assert "plans' limits only" in _row(page, plain)


def test_the_quotas_form_changes_a_keys_quotas(owner, app):
    key, _ = services.api_key_create(actor=owner, app=app, name="server", requests_per_second=5)
    client = client_for(owner)
    page = text(client.get(f"/consumer/apps/{app.pk}/"))
    assert f'action="/consumer/apps/{app.pk}/keys/{key.pk}/limits/"' in page
    field = f'id="key-{key.pk}-limits-requests_per_second"'
    assert f'<input type="number" name="requests_per_second" value="5" min="1" {field}>' in page
    generation = config_generation()

    response = client.post(
        f"/consumer/apps/{app.pk}/keys/{key.pk}/limits/",
        {"requests_per_second": "", "requests_per_minute": "100", "requests_per_day": "", "requests_per_month": ""},
        **HTMX,
    )

    assert response.status_code == 200
    page = text(response)
    assert page.startswith('<div id="keys">')
    assert f"Saved the quotas of server ({key.prefix}…)." in page
    assert "100 requests/minute" in _row(page, key)
    key.refresh_from_db()
    assert key.limits == NONE | {"requests_per_minute": 100}
    assert config_generation() == generation + 1
    assert AuditEvent.objects.filter(action="api_key.limits_update", target_id=str(key.pk)).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"requests_per_minute": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"requests_per_minute": "-3"}, "Ensure this value is greater than or equal to 1."),
        ({"requests_per_minute": "ten"}, "Enter a whole number."),
        ({"requests_per_minute": "1.5"}, "Enter a whole number."),
        ({"requests_per_minute": "99999999999"}, "Ensure this value is less than or equal to 2147483647."),
        (
            {"requests_per_second": "20", "requests_per_minute": "10"},
            "The requests per minute limit (10) is below the requests per second limit (20).",
        ),
    ],
)
def test_bad_quotas_are_shown_on_the_keys_open_form(owner, app, data, message):
    key, _ = services.api_key_create(actor=owner, app=app, name="server")
    generation = config_generation()

    response = client_for(owner).post(f"/consumer/apps/{app.pk}/keys/{key.pk}/limits/", data, **HTMX)

    assert response.status_code == 400
    page = text(response)
    assert page.startswith('<div id="keys">')
    assert '<details class="rotate quotas" open>' in _row(page, key)
    assert f'<small class="error-text" role="alert">{message}</small>' in _row(page, key)
    key.refresh_from_db()
    assert key.limits == NONE
    assert config_generation() == generation


def test_the_quotas_of_a_revoked_key_cannot_change(owner, app):
    key, _ = services.api_key_create(actor=owner, app=app, name="server")
    services.api_key_revoke(actor=owner, key=key)
    client = client_for(owner)
    assert f"/keys/{key.pk}/limits/" not in text(client.get(f"/consumer/apps/{app.pk}/"))

    response = client.post(f"/consumer/apps/{app.pk}/keys/{key.pk}/limits/", {"requests_per_minute": "60"})

    assert response.status_code == 400
    assert "This key is revoked; create a new key instead of changing its quotas." in text(response)
    key.refresh_from_db()
    assert key.requests_per_minute is None


@pytest.mark.parametrize(
    ("persona", "status"),
    [("owner", 200), ("admin_member", 200), ("member", 200), ("outsider", 404), ("staff", 403)],
)
def test_who_changes_quotas(request, owner, app, persona, status):
    key, _ = services.api_key_create(actor=owner, app=app, name="server")
    response = client_for(request.getfixturevalue(persona)).post(
        f"/consumer/apps/{app.pk}/keys/{key.pk}/limits/", {"requests_per_minute": "60"}
    )
    assert response.status_code == status
    key.refresh_from_db()
    assert (key.requests_per_minute == 60) == (status == 200)


def test_a_key_of_another_app_is_not_found_under_this_one(owner, organization, app):
    other = services.app_create(actor=owner, organization=organization, name="Other")
    key, _ = services.api_key_create(actor=owner, app=other, name="server")
    response = client_for(owner).post(f"/consumer/apps/{app.pk}/keys/{key.pk}/limits/", {"requests_per_minute": "60"})
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.requests_per_minute is None


def test_the_app_page_has_no_inline_script_or_style(owner, app):
    services.api_key_create(actor=owner, app=app, name="server", requests_per_minute=60)
    page = text(client_for(owner).get(f"/consumer/apps/{app.pk}/"))
    keys = page[page.index('<div id="keys">') :]
    assert "<script" not in keys
    assert "style=" not in keys
    assert " onclick=" not in keys
