"""Two-factor authentication: TOTP activation, login with a code, recovery codes.

Codes are computed here from the secret with RFC 6238, independently of allauth."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time

import pytest
from allauth.mfa.models import Authenticator
from django.test import Client

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def totp(secret: str, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def _login(client: Client, email: str) -> object:
    return client.post("/accounts/login/", {"login": email, "password": PASSWORD}, follow=True)


def _open_totp_activation(client: Client) -> None:
    """Security settings ask for the password again (reauthentication) before showing."""
    response = client.get("/accounts/2fa/totp/activate/", follow=True)
    if response.redirect_chain and "/accounts/reauthenticate/" in response.redirect_chain[-1][0]:
        response = client.post(response.redirect_chain[-1][0], {"password": PASSWORD}, follow=True)
    assert response.request["PATH_INFO"] == "/accounts/2fa/totp/activate/"
    assert response.status_code == 200


@pytest.fixture
def user_with_totp(client: Client):
    user = UserFactory(email="careful@example.com")
    _login(client, user.email)
    _open_totp_activation(client)
    secret = client.session["mfa.totp.secret"]
    response = client.post("/accounts/2fa/totp/activate/", {"code": totp(secret)}, follow=True)
    assert response.status_code == 200
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    client.post("/accounts/logout/")
    return user, secret


def test_activating_totp_needs_a_correct_code(client):
    user = UserFactory(email="careful@example.com")
    _login(client, user.email)
    _open_totp_activation(client)
    response = client.post("/accounts/2fa/totp/activate/", {"code": "000000"})
    assert response.status_code == 200
    assert "Incorrect code." in response.content.decode()
    assert not Authenticator.objects.filter(user=user).exists()


def test_login_with_totp_asks_for_a_code_after_the_password(client, user_with_totp):
    user, secret = user_with_totp
    response = _login(client, user.email)
    assert response.redirect_chain[-1][0] == "/accounts/2fa/authenticate/"
    assert not response.context["user"].is_authenticated

    response = client.post("/accounts/2fa/authenticate/", {"code": totp(secret)}, follow=True)
    assert response.context["user"] == user


def test_a_wrong_totp_code_is_refused(client, user_with_totp):
    user, secret = user_with_totp
    _login(client, user.email)
    wrong = f"{(int(totp(secret)) + 1) % 1_000_000:06d}"
    response = client.post("/accounts/2fa/authenticate/", {"code": wrong})
    assert response.status_code == 200
    assert "Incorrect code." in response.content.decode()
    assert client.get("/orgs/").status_code == 302, "still signed out"


def test_a_recovery_code_signs_in_once(client, user_with_totp):
    user, _secret = user_with_totp
    codes = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES).wrap().get_unused_codes()
    assert len(codes) >= 10

    _login(client, user.email)
    response = client.post("/accounts/2fa/authenticate/", {"code": codes[0]}, follow=True)
    assert response.context["user"] == user

    client.post("/accounts/logout/")
    _login(client, user.email)
    response = client.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert "Incorrect code." in response.content.decode(), "a used recovery code does not work twice"
