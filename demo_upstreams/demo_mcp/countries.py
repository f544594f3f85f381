"""A small embedded country dataset for the ``lookup_country`` tool and the country resources.

Deliberately static: the demo must work offline and answer the same thing every time.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CountryRecord:
    name: str
    iso2: str
    iso3: str
    capital: str
    currency_code: str
    currency_name: str
    calling_code: str
    region: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


COUNTRIES: tuple[CountryRecord, ...] = (
    CountryRecord("Argentina", "AR", "ARG", "Buenos Aires", "ARS", "Argentine peso", "+54", "Americas"),
    CountryRecord("Australia", "AU", "AUS", "Canberra", "AUD", "Australian dollar", "+61", "Oceania"),
    CountryRecord("Brazil", "BR", "BRA", "Brasília", "BRL", "Brazilian real", "+55", "Americas"),
    CountryRecord("Canada", "CA", "CAN", "Ottawa", "CAD", "Canadian dollar", "+1", "Americas"),
    CountryRecord("Chile", "CL", "CHL", "Santiago", "CLP", "Chilean peso", "+56", "Americas"),
    CountryRecord("China", "CN", "CHN", "Beijing", "CNY", "Renminbi", "+86", "Asia"),
    CountryRecord("Egypt", "EG", "EGY", "Cairo", "EGP", "Egyptian pound", "+20", "Africa"),
    CountryRecord("France", "FR", "FRA", "Paris", "EUR", "Euro", "+33", "Europe"),
    CountryRecord("Germany", "DE", "DEU", "Berlin", "EUR", "Euro", "+49", "Europe"),
    CountryRecord("India", "IN", "IND", "New Delhi", "INR", "Indian rupee", "+91", "Asia"),
    CountryRecord("Indonesia", "ID", "IDN", "Jakarta", "IDR", "Indonesian rupiah", "+62", "Asia"),
    CountryRecord("Italy", "IT", "ITA", "Rome", "EUR", "Euro", "+39", "Europe"),
    CountryRecord("Japan", "JP", "JPN", "Tokyo", "JPY", "Japanese yen", "+81", "Asia"),
    CountryRecord("Kenya", "KE", "KEN", "Nairobi", "KES", "Kenyan shilling", "+254", "Africa"),
    CountryRecord("Mexico", "MX", "MEX", "Mexico City", "MXN", "Mexican peso", "+52", "Americas"),
    CountryRecord("Netherlands", "NL", "NLD", "Amsterdam", "EUR", "Euro", "+31", "Europe"),
    CountryRecord("New Zealand", "NZ", "NZL", "Wellington", "NZD", "New Zealand dollar", "+64", "Oceania"),
    CountryRecord("Nigeria", "NG", "NGA", "Abuja", "NGN", "Nigerian naira", "+234", "Africa"),
    CountryRecord("Norway", "NO", "NOR", "Oslo", "NOK", "Norwegian krone", "+47", "Europe"),
    CountryRecord("Poland", "PL", "POL", "Warsaw", "PLN", "Polish złoty", "+48", "Europe"),
    CountryRecord("Portugal", "PT", "PRT", "Lisbon", "EUR", "Euro", "+351", "Europe"),
    CountryRecord("South Africa", "ZA", "ZAF", "Pretoria", "ZAR", "South African rand", "+27", "Africa"),
    CountryRecord("South Korea", "KR", "KOR", "Seoul", "KRW", "South Korean won", "+82", "Asia"),
    CountryRecord("Spain", "ES", "ESP", "Madrid", "EUR", "Euro", "+34", "Europe"),
    CountryRecord("Sweden", "SE", "SWE", "Stockholm", "SEK", "Swedish krona", "+46", "Europe"),
    CountryRecord("Switzerland", "CH", "CHE", "Bern", "CHF", "Swiss franc", "+41", "Europe"),
    CountryRecord("Turkey", "TR", "TUR", "Ankara", "TRY", "Turkish lira", "+90", "Asia"),
    CountryRecord("United Kingdom", "GB", "GBR", "London", "GBP", "Pound sterling", "+44", "Europe"),
    CountryRecord("United States", "US", "USA", "Washington, D.C.", "USD", "United States dollar", "+1", "Americas"),
    CountryRecord("Vietnam", "VN", "VNM", "Hanoi", "VND", "Vietnamese dong", "+84", "Asia"),
)

_ALIASES = {
    "america": "US",
    "united states of america": "US",
    "uk": "GB",
    "britain": "GB",
    "great britain": "GB",
    "england": "GB",
    "holland": "NL",
    "korea": "KR",
    "republic of korea": "KR",
    "turkiye": "TR",
    "viet nam": "VN",
    "deutschland": "DE",
    "espana": "ES",
    "brasil": "BR",
}


def _key(text: str) -> str:
    """Case-, accent- and spacing-insensitive form of a name: "  Türkiye " -> "turkiye"."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(stripped.casefold().split())


def _build_index() -> dict[str, CountryRecord]:
    by_iso2 = {country.iso2: country for country in COUNTRIES}
    index = {_key(name): country for country in COUNTRIES for name in (country.name, country.iso2, country.iso3)}
    index.update({_key(alias): by_iso2[iso2] for alias, iso2 in _ALIASES.items()})
    return index


_INDEX = _build_index()


def find_country(query: str) -> CountryRecord | None:
    """The country whose name, ISO 3166 alpha-2 or alpha-3 code, or common alias is ``query``
    (ignoring case, accents and extra spaces); None when there is none."""
    return _INDEX.get(_key(query))
