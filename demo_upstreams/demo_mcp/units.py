"""Unit conversion for the ``convert_units`` tool: length, mass and temperature."""

from __future__ import annotations

from typing import Literal, get_args

Quantity = Literal["length", "mass", "temperature"]
Unit = Literal[
    "mm", "cm", "m", "km", "in", "ft", "yd", "mi", "nmi", "mg", "g", "kg", "t", "oz", "lb", "st", "C", "F", "K"
]
UNITS: tuple[str, ...] = get_args(Unit)

# Factors to the base unit of each quantity (metre, kilogram); exact by definition.
_LINEAR: dict[str, tuple[Quantity, float]] = {
    "mm": ("length", 0.001),
    "cm": ("length", 0.01),
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "in": ("length", 0.0254),
    "ft": ("length", 0.3048),
    "yd": ("length", 0.9144),
    "mi": ("length", 1609.344),
    "nmi": ("length", 1852.0),
    "mg": ("mass", 0.000001),
    "g": ("mass", 0.001),
    "kg": ("mass", 1.0),
    "t": ("mass", 1000.0),
    "oz": ("mass", 0.028349523125),
    "lb": ("mass", 0.45359237),
    "st": ("mass", 6.35029318),
}
_TEMPERATURES = frozenset({"C", "F", "K"})
_SIGNIFICANT_DIGITS = 12  # enough for any real use, and hides binary noise (0.1 + 0.2)


class ConversionError(ValueError):
    """The units measure different quantities, or the value is impossible (below 0 K)."""


def quantity_of(unit: str) -> Quantity:
    if unit in _TEMPERATURES:
        return "temperature"
    return _LINEAR[unit][0]


def units_by_quantity() -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for unit in UNITS:
        grouped.setdefault(quantity_of(unit), []).append(unit)
    return grouped


def _to_kelvin(value: float, unit: str) -> float:
    if unit == "C":
        return value + 273.15
    if unit == "F":
        return (value - 32.0) * 5.0 / 9.0 + 273.15
    return value


def _from_kelvin(kelvin: float, unit: str) -> float:
    if unit == "C":
        return kelvin - 273.15
    if unit == "F":
        return (kelvin - 273.15) * 9.0 / 5.0 + 32.0
    return kelvin


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """``value`` in ``from_unit``, expressed in ``to_unit`` (12 significant digits).

    Raises:
        ConversionError: the units measure different quantities, or a temperature is below
            absolute zero.
    """
    source, target = quantity_of(from_unit), quantity_of(to_unit)
    if source != target:
        raise ConversionError(f"cannot convert {from_unit} ({source}) to {to_unit} ({target})")
    if source == "temperature":
        kelvin = _to_kelvin(value, from_unit)
        if kelvin < 0:
            raise ConversionError(f"{value} {from_unit} is below absolute zero")
        result = _from_kelvin(kelvin, to_unit)
    else:
        result = value * _LINEAR[from_unit][1] / _LINEAR[to_unit][1]
    return float(f"{result:.{_SIGNIFICANT_DIGITS}g}")
