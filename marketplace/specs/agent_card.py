"""Validating A2A agent cards, v0.3 and v1.0.

The version is told by the shape: a card with ``supportedInterfaces`` is v1.0 (where ``url``,
``preferredTransport``, ``protocolVersion`` and ``additionalInterfaces`` moved into the
interfaces), any other is v0.3. Both are read into one `AgentCard` whose ``interfaces`` list
every endpoint, the preferred one first, so callers need not care which version they got.

Required fields are enforced, every URL must be absolute http(s), and every problem found is
reported in ``SpecError.details`` with its location (``skills[1].tags``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from marketplace.specs.documents import load_mapping
from marketplace.specs.errors import SpecError

__all__ = ["AgentCapabilities", "AgentCard", "AgentInterface", "AgentProvider", "AgentSkill", "parse_agent_card"]

_V03_DEFAULT_TRANSPORT = "JSONRPC"


@dataclass(frozen=True, slots=True)
class AgentInterface:
    """An endpoint. ``protocol_binding`` is ``JSONRPC``, ``GRPC``, ``HTTP+JSON`` or another binding."""

    url: str
    protocol_binding: str
    protocol_version: str
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class AgentCapabilities:
    streaming: bool = False
    push_notifications: bool = False
    state_transition_history: bool = False
    extended_agent_card: bool = False
    extensions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AgentSkill:
    id: str
    name: str
    description: str
    tags: list[str]
    examples: list[str] = field(default_factory=list)
    input_modes: list[str] = field(default_factory=list)
    output_modes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AgentProvider:
    organization: str
    url: str


@dataclass(frozen=True, slots=True)
class AgentCard:
    """A validated card. ``spec_version`` is ``"0.3"`` or ``"1.0"``; ``url`` and
    ``protocol_version`` are those of the preferred interface (``interfaces[0]``)."""

    spec_version: str
    name: str
    description: str
    version: str
    url: str
    protocol_version: str
    interfaces: list[AgentInterface]
    capabilities: AgentCapabilities
    default_input_modes: list[str]
    default_output_modes: list[str]
    skills: list[AgentSkill]
    security_schemes: dict[str, Any] = field(default_factory=dict)
    security: list[dict[str, Any]] = field(default_factory=list)
    provider: AgentProvider | None = None
    documentation_url: str | None = None
    icon_url: str | None = None
    document: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def preferred_transport(self) -> str:
        return self.interfaces[0].protocol_binding


class _Reader:
    """Typed field access that records every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def string(self, raw: Mapping[str, Any], key: str, where: str, *, required: bool) -> str | None:
        at = f"{where}.{key}" if where else key
        value = raw.get(key)
        if value is None:
            if required:
                self.add(at, "is required")
            return None
        if not isinstance(value, str):
            self.add(at, f"must be a string, not {type(value).__name__}")
            return None
        if required and not value.strip():
            self.add(at, "must not be empty")
        return value

    def url(self, raw: Mapping[str, Any], key: str, where: str, *, required: bool) -> str | None:
        value = self.string(raw, key, where, required=required)
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self.add(f"{where}.{key}" if where else key, f"{value!r} is not an absolute http(s) URL")
        return value

    def strings(self, raw: Mapping[str, Any], key: str, where: str, *, required: bool) -> list[str]:
        at = f"{where}.{key}" if where else key
        value = raw.get(key)
        if value is None:
            if required:
                self.add(at, "is required (a list of strings)")
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.add(at, "must be a list of strings")
            return []
        return list(value)

    def flag(self, raw: Mapping[str, Any], key: str, where: str) -> bool:
        value = raw.get(key, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.add(f"{where}.{key}" if where else key, "must be true or false")
            return False
        return value

    def mapping(self, raw: Mapping[str, Any], key: str, where: str, *, required: bool) -> dict[str, Any] | None:
        at = f"{where}.{key}" if where else key
        value = raw.get(key)
        if value is None:
            if required:
                self.add(at, "is required (an object)")
            return None
        if not isinstance(value, dict):
            self.add(at, f"must be an object, not {type(value).__name__}")
            return None
        return value


def parse_agent_card(text_or_dict: str | bytes | Mapping[str, Any], *, max_bytes: int = 512_000) -> AgentCard:
    """Validate an agent card (JSON text or a parsed mapping); SpecError listing every problem."""
    card = load_mapping(text_or_dict, max_bytes=max_bytes, what="agent card")
    r = _Reader()
    is_v1 = "supportedInterfaces" in card
    name = r.string(card, "name", "", required=True)
    description = r.string(card, "description", "", required=True)
    version = r.string(card, "version", "", required=True)
    interfaces = _v1_interfaces(card, r) if is_v1 else _v03_interfaces(card, r)
    capabilities = _capabilities(card, r)
    input_modes = r.strings(card, "defaultInputModes", "", required=True)
    output_modes = r.strings(card, "defaultOutputModes", "", required=True)
    skills = _skills(card, r)
    schemes = r.mapping(card, "securitySchemes", "", required=False) or {}
    for scheme_name, scheme in schemes.items():
        if not isinstance(scheme, dict):
            r.add(f"securitySchemes.{scheme_name}", "must be an object")
    security = _security(card, "securityRequirements" if "securityRequirements" in card else "security", r)
    provider = None
    raw_provider = r.mapping(card, "provider", "", required=False)
    if raw_provider is not None:
        organization = r.string(raw_provider, "organization", "provider", required=True)
        provider_url = r.url(raw_provider, "url", "provider", required=True)
        provider = AgentProvider(organization or "", provider_url or "")
    documentation_url = r.url(card, "documentationUrl", "", required=False)
    icon_url = r.url(card, "iconUrl", "", required=False)
    if r.problems:
        first = r.problems[0]
        more = f" (and {len(r.problems) - 1} more)" if len(r.problems) > 1 else ""
        raise SpecError(f"The agent card is invalid: {first}{more}.", field=first.split(": ", 1)[0], details=r.problems)
    return AgentCard(
        spec_version="1.0" if is_v1 else "0.3",
        name=name or "",
        description=description or "",
        version=version or "",
        url=interfaces[0].url,
        protocol_version=interfaces[0].protocol_version,
        interfaces=interfaces,
        capabilities=capabilities,
        default_input_modes=input_modes,
        default_output_modes=output_modes,
        skills=skills,
        security_schemes=schemes,
        security=security,
        provider=provider,
        documentation_url=documentation_url,
        icon_url=icon_url,
        document=card,
    )


def _v03_interfaces(card: dict[str, Any], r: _Reader) -> list[AgentInterface]:
    url = r.url(card, "url", "", required=True)
    protocol_version = r.string(card, "protocolVersion", "", required=True)
    transport = r.string(card, "preferredTransport", "", required=False) or _V03_DEFAULT_TRANSPORT
    interfaces = [AgentInterface(url or "", transport, protocol_version or "")]
    extra = card.get("additionalInterfaces")
    if extra is None:
        return interfaces
    if not isinstance(extra, list):
        r.add("additionalInterfaces", "must be a list of {url, transport} objects")
        return interfaces
    for i, item in enumerate(extra):
        where = f"additionalInterfaces[{i}]"
        if not isinstance(item, dict):
            r.add(where, "must be an object with url and transport")
            continue
        item_url = r.url(item, "url", where, required=True)
        item_transport = r.string(item, "transport", where, required=True)
        if item_url and item_transport and (item_url, item_transport) != (url, transport):
            interfaces.append(AgentInterface(item_url, item_transport, protocol_version or ""))
    return interfaces


def _v1_interfaces(card: dict[str, Any], r: _Reader) -> list[AgentInterface]:
    raw = card.get("supportedInterfaces")
    if not isinstance(raw, list) or not raw:
        r.add("supportedInterfaces", "must be a non-empty list of {url, protocolBinding, protocolVersion}")
        return [AgentInterface("", "", "")]
    interfaces = []
    for i, item in enumerate(raw):
        where = f"supportedInterfaces[{i}]"
        if not isinstance(item, dict):
            r.add(where, "must be an object with url, protocolBinding and protocolVersion")
            continue
        url = r.url(item, "url", where, required=True)
        binding = r.string(item, "protocolBinding", where, required=True)
        protocol_version = r.string(item, "protocolVersion", where, required=True)
        tenant = r.string(item, "tenant", where, required=False)
        interfaces.append(AgentInterface(url or "", binding or "", protocol_version or "", tenant))
    return interfaces or [AgentInterface("", "", "")]


def _capabilities(card: dict[str, Any], r: _Reader) -> AgentCapabilities:
    raw = r.mapping(card, "capabilities", "", required=True)
    if raw is None:
        return AgentCapabilities()
    extensions = raw.get("extensions") or []
    if not isinstance(extensions, list) or not all(isinstance(e, dict) for e in extensions):
        r.add("capabilities.extensions", "must be a list of objects")
        extensions = []
    return AgentCapabilities(
        streaming=r.flag(raw, "streaming", "capabilities"),
        push_notifications=r.flag(raw, "pushNotifications", "capabilities"),
        state_transition_history=r.flag(raw, "stateTransitionHistory", "capabilities"),
        extended_agent_card=r.flag(raw, "extendedAgentCard", "capabilities")
        or r.flag(card, "supportsAuthenticatedExtendedCard", ""),
        extensions=extensions,
    )


def _skills(card: dict[str, Any], r: _Reader) -> list[AgentSkill]:
    raw = card.get("skills")
    if not isinstance(raw, list):
        r.add("skills", "is required (a list of skills, which may be empty)")
        return []
    skills: list[AgentSkill] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"skills[{i}]"
        if not isinstance(item, dict):
            r.add(where, "must be an object with id, name, description and tags")
            continue
        skill_id = r.string(item, "id", where, required=True)
        if skill_id and skill_id in seen:
            r.add(f"{where}.id", f"{skill_id!r} is already the id of skills[{seen[skill_id]}]")
        if skill_id:
            seen.setdefault(skill_id, i)
        skills.append(
            AgentSkill(
                id=skill_id or "",
                name=r.string(item, "name", where, required=True) or "",
                description=r.string(item, "description", where, required=True) or "",
                tags=r.strings(item, "tags", where, required=True),
                examples=r.strings(item, "examples", where, required=False),
                input_modes=r.strings(item, "inputModes", where, required=False),
                output_modes=r.strings(item, "outputModes", where, required=False),
            )
        )
    return skills


def _security(card: dict[str, Any], key: str, r: _Reader) -> list[dict[str, Any]]:
    """v0.3 ``security``: ``[{scheme: [scopes]}]``; v1.0 ``securityRequirements``: objects whose
    shape (``{"schemes": {...}}``) is passed through as-is."""
    raw = card.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(req, dict) for req in raw):
        r.add(key, "must be a list of objects")
        return []
    if key == "security":
        for i, req in enumerate(raw):
            if not all(isinstance(s, list) and all(isinstance(x, str) for x in s) for s in req.values()):
                r.add(f"security[{i}]", "must map each security scheme name to a list of scopes")
    return [dict(req) for req in raw]
