"""The demo-tools tools. Each takes typed, described arguments (its input schema) and returns a
pydantic model (its output schema, sent as structured content). A domain error raises
``ToolError``, which the client sees as a result with ``isError: true``; arguments that fail
the input schema are reported the same way by the SDK."""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from demo_upstreams.demo_mcp.countries import find_country
from demo_upstreams.demo_mcp.units import ConversionError, Quantity, Unit, convert, quantity_of

_PURE = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
_CLOCK = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


class Sum(BaseModel):
    sum: float = Field(description="a + b")


class Conversion(BaseModel):
    value: float = Field(description="The converted value (12 significant digits).")
    unit: Unit
    input_value: float
    input_unit: Unit
    quantity: Quantity


class WordCount(BaseModel):
    words: int
    unique_words: int = Field(description="Distinct words, ignoring case.")
    characters: int
    characters_excluding_spaces: int
    sentences: int
    lines: int


class CurrentTime(BaseModel):
    timezone: str
    iso8601: str = Field(description="Local time with its UTC offset, to the second.")
    unix_seconds: int
    utc_offset: str = Field(description="Like +02:00.")
    weekday: str
    is_dst: bool


class Country(BaseModel):
    name: str
    iso2: str = Field(description="ISO 3166-1 alpha-2 code.")
    iso3: str = Field(description="ISO 3166-1 alpha-3 code.")
    capital: str
    currency_code: str = Field(description="ISO 4217 code.")
    currency_name: str
    calling_code: str = Field(description="International dialling prefix, like +44.")
    region: str


class Slug(BaseModel):
    slug: str
    length: int


def add_numbers(
    a: Annotated[float, Field(description="The first addend.")],
    b: Annotated[float, Field(description="The second addend.")],
) -> Sum:
    """Add two numbers."""
    total = a + b
    if not math.isfinite(total):
        raise ToolError("the sum is not a finite number")
    return Sum(sum=total)


def convert_units(
    value: Annotated[float, Field(description="The amount to convert.")],
    from_unit: Annotated[Unit, Field(description="The unit of value.")],
    to_unit: Annotated[Unit, Field(description="The unit to convert to; it must measure the same quantity.")],
) -> Conversion:
    """Convert a length (mm, cm, m, km, in, ft, yd, mi, nmi), a mass (mg, g, kg, t, oz, lb, st)
    or a temperature (C, F, K) from one unit to another."""
    try:
        converted = convert(value, from_unit, to_unit)
    except ConversionError as exc:
        raise ToolError(str(exc)) from exc
    return Conversion(
        value=converted, unit=to_unit, input_value=value, input_unit=from_unit, quantity=quantity_of(from_unit)
    )


def word_count(text: Annotated[str, Field(description="The text to count.", max_length=1_000_000)]) -> WordCount:
    """Count the words, distinct words, characters, sentences and lines of a text."""
    words = _WORD.findall(text)
    return WordCount(
        words=len(words),
        unique_words=len({word.casefold() for word in words}),
        characters=len(text),
        characters_excluding_spaces=sum(1 for char in text if not char.isspace()),
        sentences=len(_SENTENCE_END.findall(text)) or (1 if words else 0),
        lines=len(text.splitlines()),
    )


def current_time(
    timezone: Annotated[
        str, Field(description="An IANA time zone, like Europe/Paris or America/New_York.", max_length=64)
    ] = "UTC",
) -> CurrentTime:
    """The current date and time in a time zone."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolError(f"unknown time zone {timezone!r}; use an IANA name like Europe/Paris") from exc
    moment = datetime.now(UTC).astimezone(zone).replace(microsecond=0)
    offset = moment.strftime("%z")
    return CurrentTime(
        timezone=timezone,
        iso8601=moment.isoformat(),
        unix_seconds=int(moment.timestamp()),
        utc_offset=f"{offset[:3]}:{offset[3:]}",
        weekday=moment.strftime("%A"),
        is_dst=bool(moment.dst()),
    )


def lookup_country(
    query: Annotated[str, Field(description="A country name, an ISO alpha-2 or alpha-3 code.", max_length=100)],
) -> Country:
    """Look up a country's capital, currency and calling code (a small built-in dataset)."""
    record = find_country(query)
    if record is None:
        raise ToolError(f"no country matches {query!r}; try a name (Japan) or an ISO code (JP, JPN)")
    return Country(**record.as_dict())


def slugify(
    text: Annotated[str, Field(description="The text to turn into a slug.", max_length=10_000)],
    separator: Annotated[Literal["-", "_", "."], Field(description="What joins the words.")] = "-",
    max_length: Annotated[
        int | None, Field(description="Cut the slug to this many characters, at a word boundary.", ge=1, le=1000)
    ] = None,
) -> Slug:
    """Make a URL slug: lower-case ASCII letters and digits, words joined by a separator."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = [word for word in _NOT_SLUG.split(ascii_text.lower()) if word]
    slug = separator.join(words)
    if max_length is not None and len(slug) > max_length:
        cut = slug[:max_length]
        if slug[max_length] != separator and separator in cut:
            cut = cut.rsplit(separator, 1)[0]  # drop the word the limit falls inside
        slug = cut.strip(separator)
    return Slug(slug=slug, length=len(slug))


def register_tools(server: MCPServer) -> None:
    server.add_tool(add_numbers, title="Add numbers", annotations=_PURE)
    server.add_tool(convert_units, title="Convert units", annotations=_PURE)
    server.add_tool(word_count, title="Count words", annotations=_PURE)
    server.add_tool(current_time, title="Current time", annotations=_CLOCK)
    server.add_tool(lookup_country, title="Look up a country", annotations=_PURE)
    server.add_tool(slugify, title="Slugify", annotations=_PURE)
