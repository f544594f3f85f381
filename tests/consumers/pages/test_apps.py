"""The consumer area's home and app pages: listing, creating, editing and deleting apps,
and who may do what (outsiders get 404, members lacking the role 403, staff read)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from consumers import services
from consumers.models import ApiKey, ConsumerApp, Subscription
from tests.conftest import client_for
from tests.consumers.pages.helpers import text

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_anonymous_visitors_are_sent_to_sign_in(app):
    for url in ("/consumer/", f"/consumer/apps/{app.pk}/"):
        response = Client().get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/accounts/login/")


def test_home_lists_the_current_organizations_apps_with_counts(owner, app, vendor_product, free_plan):
    services.api_key_create(actor=owner, app=app, name="server")
    revoked, _ = services.api_key_create(actor=owner, app=app, name="old")
    services.api_key_revoke(actor=owner, key=revoked)
    services.subscription_request(actor=owner, app=app, product=vendor_product, plan=free_plan)
    response = client_for(owner).get("/consumer/")
    page = text(response)
    assert f'href="/consumer/apps/{app.pk}/"' in page
    assert "Support bot" in page
    assert "Production" in page
    listed = response.context["apps"].get()
    # one usable key (the revoked one does not count) and one subscription
    assert (listed.key_count, listed.subscription_count) == (1, 1)


def test_the_home_does_not_query_once_per_app(owner, organization, app):
    client = client_for(owner)
    with CaptureQueriesContext(connection) as one:
        client.get("/consumer/")
    for n in range(5):
        created = services.app_create(actor=owner, organization=organization, name=f"App {n}")
        services.api_key_create(actor=owner, app=created, name="k")
    with CaptureQueriesContext(connection) as six:
        client.get("/consumer/")
    assert len(six) == len(one)


def test_home_has_an_empty_state_and_the_create_form(owner):
    page = text(client_for(owner).get("/consumer/"))
    assert "No apps yet" in page
    assert 'id="app-form"' in page


def test_without_an_organization_the_home_asks_to_create_one(staff):
    page = text(client_for(staff).get("/consumer/"))
    assert "Create an organization first" in page
    assert 'id="app-form"' not in page


def test_without_an_organization_creating_an_app_sends_to_organizations(staff):
    response = client_for(staff).post("/consumer/", {"name": "X", "environment": "development"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs/"
    assert not ConsumerApp.objects.exists()


def test_outsiders_see_only_their_own_apps_on_the_home(outsider, app):
    page = text(client_for(outsider).get("/consumer/"))
    assert "Support bot" not in page


@pytest.mark.parametrize("persona", ["owner", "admin_member", "member"])
def test_any_member_creates_an_app_and_lands_on_it(request, persona, organization):
    user = request.getfixturevalue(persona)
    response = client_for(user).post(
        "/consumer/", {"name": " Billing ", "description": "Invoices", "environment": "staging"}
    )
    app = ConsumerApp.objects.get(organization=organization)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/consumer/apps/{app.pk}/"
    assert (app.name, app.environment, app.created_by) == ("Billing", "staging", user)
    assert AuditEvent.objects.filter(action="app.create", target_id=str(app.pk)).exists()


def test_creating_an_app_over_htmx_redirects_the_whole_page(owner, organization):
    response = client_for(owner).post("/consumer/", {"name": "Billing", "environment": "development"}, **HTMX)
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith("/consumer/apps/")


def test_a_duplicate_app_name_is_refused(owner, app):
    response = client_for(owner).post("/consumer/", {"name": "Support bot", "environment": "development"}, **HTMX)
    assert response.status_code == 400
    page = text(response)
    assert page.startswith('<form id="app-form"')  # the partial, for the htmx swap
    assert "already has an app named" in page
    assert ConsumerApp.objects.count() == 1


def test_a_duplicate_app_name_gets_the_services_message_on_the_name_field(owner, app):
    response = client_for(owner).post("/consumer/", {"name": "Support bot", "environment": "development"}, **HTMX)
    assert response.status_code == 400
    assert response.context["form"].errors == {"name": ["Acme already has an app named 'Support bot'."]}


def test_an_app_needs_a_name_and_a_known_environment(owner):
    response = client_for(owner).post("/consumer/", {"name": "", "environment": "moon"})
    assert response.status_code == 400
    page = text(response)
    assert "This field is required." in page
    assert "Select a valid choice. moon is not one of the available choices." in page
    assert not ConsumerApp.objects.exists()


# --- The app page -------------------------------------------------------------------------


@pytest.mark.parametrize(("persona", "status"), [("owner", 200), ("member", 200), ("outsider", 404), ("staff", 200)])
def test_who_sees_the_app_page(request, app, persona, status):
    response = client_for(request.getfixturevalue(persona)).get(f"/consumer/apps/{app.pk}/")
    assert response.status_code == status


def test_members_get_the_forms_and_staff_a_read_only_page(member, staff, app):
    page = text(client_for(member).get(f"/consumer/apps/{app.pk}/"))
    assert 'id="key-form"' in page
    assert f'action="/consumer/apps/{app.pk}/edit/"' in page
    assert "Delete this app" not in page  # admins only
    staff_page = text(client_for(staff).get(f"/consumer/apps/{app.pk}/"))
    assert "staff view" in staff_page
    assert 'id="key-form"' not in staff_page
    assert f'action="/consumer/apps/{app.pk}/edit/"' not in staff_page


def test_admins_get_the_danger_zone(admin_member, app):
    assert "Delete this app" in text(client_for(admin_member).get(f"/consumer/apps/{app.pk}/"))


def test_the_app_page_has_empty_states(owner, app):
    page = text(client_for(owner).get(f"/consumer/apps/{app.pk}/"))
    assert "No keys yet." in page
    assert "No subscriptions yet" in page


@pytest.mark.parametrize(("persona", "status"), [("member", 302), ("outsider", 404), ("staff", 403)])
def test_who_edits_an_app(request, app, persona, status):
    response = client_for(request.getfixturevalue(persona)).post(
        f"/consumer/apps/{app.pk}/edit/", {"name": "Renamed", "description": "", "environment": "staging"}
    )
    assert response.status_code == status
    app.refresh_from_db()
    assert app.name == ("Renamed" if status == 302 else "Support bot")


def test_renaming_to_a_taken_name_is_refused(owner, organization, app):
    services.app_create(actor=owner, organization=organization, name="Other")
    response = client_for(owner).post(
        f"/consumer/apps/{app.pk}/edit/", {"name": "Other", "environment": "production"}, **HTMX
    )
    assert response.status_code == 400
    page = text(response)
    assert page.startswith('<div id="app-settings">')
    assert "already has an app named" in page
    app.refresh_from_db()
    assert app.name == "Support bot"


@pytest.mark.parametrize(
    ("persona", "status"), [("owner", 302), ("admin_member", 302), ("member", 403), ("outsider", 404), ("staff", 403)]
)
def test_who_deletes_an_app(request, app, persona, status):
    response = client_for(request.getfixturevalue(persona)).post(
        f"/consumer/apps/{app.pk}/delete/", {"confirm_name": "Support bot"}
    )
    assert response.status_code == status
    assert ConsumerApp.objects.filter(pk=app.pk).exists() == (status != 302)


def test_deleting_an_app_needs_its_name_typed(owner, app):
    response = client_for(owner).post(f"/consumer/apps/{app.pk}/delete/", {"confirm_name": "support"})
    assert response.status_code == 400
    assert "Type Support bot to confirm the deletion." in text(response)
    assert ConsumerApp.objects.filter(pk=app.pk).exists()


def test_deleting_an_app_revokes_its_keys_and_ends_its_subscriptions(owner, app, vendor_product, free_plan):
    key, _ = services.api_key_create(actor=owner, app=app, name="server")
    services.subscription_request(actor=owner, app=app, product=vendor_product, plan=free_plan)
    response = client_for(owner).post(f"/consumer/apps/{app.pk}/delete/", {"confirm_name": "Support bot"}, follow=True)
    assert "Deleted Support bot" in text(response)
    assert not ApiKey.objects.filter(pk=key.pk).exists()
    assert not Subscription.objects.exists()
    assert AuditEvent.objects.filter(action="app.delete").exists()
