"""Requests the portal makes on a provider's behalf, guarded against SSRF.

A provider names URLs (an OpenAPI document, an agent card, an MCP server, an upstream).
Fetching them from inside our network must not let anyone reach what is behind it: cloud
metadata, databases, admin ports. So every outbound request here:

1. accepts only http and https URLs without credentials in them;
2. resolves the host once, and refuses the request if any of its addresses is loopback,
   private, link-local, multicast, reserved or otherwise not public, unless a setting
   allows that class (``SSRF_ALLOW_LOOPBACK``, ``SSRF_ALLOW_PRIVATE``; link-local, which
   holds the cloud metadata service, is never allowed);
3. connects to the address it checked, not to a second resolution of the name (no DNS
   rebinding), while TLS still verifies the certificate against the host name (SNI);
4. follows at most a few redirects, each checked the same way;
5. stops reading past a size limit, and gives up after its timeouts.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import httpx2
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
MAX_REDIRECTS = 3


class OutboundError(Exception):
    """A URL we refuse to fetch, or a fetch that failed. The message is for the user."""


@dataclass(frozen=True)
class UrlPolicy:
    allow_loopback: bool = False
    allow_private: bool = False

    @classmethod
    def from_settings(cls) -> UrlPolicy:
        return cls(
            allow_loopback=bool(getattr(settings, "SSRF_ALLOW_LOOPBACK", False)),
            allow_private=bool(getattr(settings, "SSRF_ALLOW_PRIVATE", False)),
        )

    def refusal(self, address: IPAddress) -> str | None:
        """Why this address may not be reached, or None when it may."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_link_local:
            return "a link-local address (such as the cloud metadata service)"
        if address.is_loopback:
            return None if self.allow_loopback else "a loopback address"
        if address.is_private or address in _CGNAT:
            return None if self.allow_private else "a private network address"
        if address.is_multicast or address.is_reserved or address.is_unspecified or not address.is_global:
            return "a reserved or non-public address"
        return None


def _split_checked(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable URL, else OutboundError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundError(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in {"http", "https"}:
        raise OutboundError("Only http:// and https:// URLs are allowed.")
    if not parts.hostname:
        raise OutboundError("The URL has no host name.")
    if parts.username or parts.password:
        raise OutboundError("Put credentials in the upstream credentials fields, not in the URL.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve_checked(url: str, policy: UrlPolicy | None = None) -> IPAddress:
    """Resolve the URL's host and return the address to connect to, or raise
    OutboundError if the URL or any address of its host is not allowed."""
    policy = policy or UrlPolicy.from_settings()
    _scheme, host, port = _split_checked(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise OutboundError(f"The host {host} cannot be resolved.") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        reason = policy.refusal(address)
        if reason is not None:
            raise OutboundError(f"{host} resolves to {reason}, which the platform does not call.")
    return addresses[0]


def check_url(url: str, policy: UrlPolicy | None = None) -> None:
    """Refuse (OutboundError) a URL that the platform must not call."""
    resolve_checked(url, policy)


def _pin(request: httpx.Request | httpx2.Request, policy: UrlPolicy) -> None:
    """Point the request at the checked address; keep Host and TLS on the name."""
    host = request.url.host
    address = resolve_checked(str(request.url), policy)
    if str(address) != host:
        request.headers["Host"] = request.url.netloc.decode("ascii")
        request.extensions = {**request.extensions, "sni_hostname": host}
        request.url = request.url.copy_with(host=str(address))


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport that checks and pins every request (redirects included)."""

    def __init__(self, policy: UrlPolicy | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy or UrlPolicy.from_settings()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _pin(request, self.policy)
        return super().handle_request(request)


class AsyncGuardedTransport(httpx2.AsyncHTTPTransport):
    """The async twin of GuardedTransport, for the MCP SDK's client (which uses httpx2).
    Resolution is a blocking call; discovery runs off the request path."""

    def __init__(self, policy: UrlPolicy | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy or UrlPolicy.from_settings()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        _pin(request, self.policy)
        return await super().handle_async_request(request)


def guarded_async_client_factory(policy: UrlPolicy | None = None) -> Callable[..., httpx2.AsyncClient]:
    """A factory with the signature of the MCP SDK's ``httpx_client_factory``."""

    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
        **kwargs: Any,
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            transport=AsyncGuardedTransport(policy),
            headers=headers,
            timeout=timeout or httpx2.Timeout(30.0),
            auth=auth,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
        )

    return factory


@dataclass(frozen=True)
class FetchedDocument:
    url: str
    content_type: str
    text: str


def fetch_document(
    url: str,
    *,
    max_bytes: int = 2_000_000,
    timeout: float = 10.0,
    accept: str = "application/json, application/yaml, text/yaml, */*;q=0.5",
    policy: UrlPolicy | None = None,
) -> FetchedDocument:
    """GET a small text document (an OpenAPI document, an agent card). Raises
    OutboundError with a message for the user on refusal, failure, non-2xx status or a
    body over ``max_bytes``."""
    try:
        with (
            httpx.Client(
                transport=GuardedTransport(policy),
                timeout=httpx.Timeout(timeout),
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                headers={"Accept": accept, "User-Agent": f"{settings.PLATFORM_NAME} fetcher"},
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise OutboundError(f"{url} answered HTTP {response.status_code}.")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise OutboundError(f"The document is larger than the {max_bytes:,}-byte limit.")
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise OutboundError(f"The document is larger than the {max_bytes:,}-byte limit.")
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            encoding = response.encoding or "utf-8"
    except httpx.TooManyRedirects:
        raise OutboundError(f"{url} redirects more than {MAX_REDIRECTS} times.") from None
    except httpx.TimeoutException:
        raise OutboundError(f"{url} did not answer within {timeout:g} s.") from None
    except httpx.HTTPError as exc:
        raise OutboundError(f"{url} could not be fetched: {exc.__class__.__name__}.") from None
    try:
        text = bytes(body).decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise OutboundError("The document is not valid text (UTF-8 expected).") from None
    return FetchedDocument(url=url, content_type=content_type, text=text)
