"""Sign-up with email verification, login, and password reset through allauth's pages."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def _signup(client: Client, email: str, capture) -> object:
    with capture(execute=True):
        return client.post(
            "/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD}, follow=True
        )


def _link_in_last_email(pattern: str) -> str:
    match = re.search(pattern, mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(0)


def test_signup_sends_a_verification_email_and_the_link_signs_the_user_in(client, django_capture_on_commit_callbacks):
    response = _signup(client, "New.Person@Example.com", django_capture_on_commit_callbacks)
    assert response.status_code == 200
    user = User.objects.get()
    assert user.email == "new.person@example.com"
    assert not response.context["user"].is_authenticated, "unverified users are not signed in"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.person@example.com"]

    link = _link_in_last_email(r"http://testserver/accounts/confirm-email/[^/\s]+/")
    assert client.get(link).status_code == 200
    response = client.post(link, follow=True)
    assert response.status_code == 200
    assert response.context["user"] == user
    assert user.emailaddress_set.get().verified


def test_an_unverified_user_cannot_sign_in(client, django_capture_on_commit_callbacks):
    UserFactory(email="pending@example.com", verified_email=False)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/login/", {"login": "pending@example.com", "password": PASSWORD}, follow=True)
    assert not response.context["user"].is_authenticated
    assert response.redirect_chain[-1][0] == "/accounts/confirm-email/"
    assert "confirm-email" in mail.outbox[-1].body, "a fresh verification email is sent"


def test_signup_with_a_taken_address_creates_nobody_and_reveals_nothing(client, django_capture_on_commit_callbacks):
    """Account enumeration is prevented: the page looks like a normal signup, and the
    address's owner is told by email that someone tried."""
    UserFactory(email="taken@example.com")
    response = _signup(client, "TAKEN@example.com", django_capture_on_commit_callbacks)
    assert response.redirect_chain[-1][0] == "/accounts/confirm-email/"
    assert User.objects.count() == 1
    assert mail.outbox[-1].to == ["taken@example.com"]
    assert "already" in mail.outbox[-1].body.lower()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-email", "password1": PASSWORD, "password2": PASSWORD}, "Enter a valid email address."),
        ({"email": "a@example.com", "password1": PASSWORD, "password2": PASSWORD + "x"}, "You must type the same"),
        ({"email": "a@example.com", "password1": "short", "password2": "short"}, "This password is too short"),
    ],
)
def test_signup_explains_bad_input_and_creates_nothing(client, data, message):
    response = client.post("/accounts/signup/", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not User.objects.exists()


def test_verified_user_signs_in_with_email_and_password(client):
    user = UserFactory(email="ok@example.com")
    response = client.post("/accounts/login/", {"login": "OK@example.com", "password": PASSWORD}, follow=True)
    assert response.context["user"] == user
    assert response.redirect_chain[-1][0] == "/"


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(client):
    UserFactory(email="ok@example.com")
    response = client.post("/accounts/login/", {"login": "ok@example.com", "password": "wrong-password-1"})
    assert response.status_code == 200
    assert "The email address and/or password you specified are not correct." in response.content.decode()
    assert not response.context["user"].is_authenticated


def test_password_reset_by_email(client, django_capture_on_commit_callbacks):
    user = UserFactory(email="forgot@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password/reset/", {"email": "forgot@example.com"})
    link = _link_in_last_email(r"http://testserver/accounts/password/reset/key/[^\s]+/")
    response = client.get(link, follow=True)
    form_url = response.redirect_chain[-1][0]
    new_password = "a-brand-new-password-42"
    response = client.post(form_url, {"password1": new_password, "password2": new_password}, follow=True)
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.check_password(new_password)


def test_emails_are_sent_only_after_the_transaction_commits(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post("/accounts/signup/", {"email": "later@example.com", "password1": PASSWORD, "password2": PASSWORD})
    assert mail.outbox == []
    assert callbacks, "the email task is enqueued with transaction.on_commit"
    for callback in callbacks:
        callback()
    assert len(mail.outbox) == 1
