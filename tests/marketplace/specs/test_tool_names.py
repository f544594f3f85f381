from __future__ import annotations

import re

import pytest

from marketplace.specs.errors import SpecError
from marketplace.specs.tool_names import (
    mcp_tool_name_problem,
    sanitize_tool_name,
    unique_tool_names,
    validate_tool_name,
)

LEGAL = re.compile(r"[A-Za-z0-9_-]{1,64}")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("getPetById", "getPetById"),
        ("list-pets_v2", "list-pets_v2"),
        ("weather.current.get", "weather_current_get"),
        ("get /pets/{petId}", "get_pets_petId"),
        ("  spaced   out  ", "spaced_out"),
        ("café crème", "cafe_creme"),
        ("Ünïcödé", "Unicode"),
        ("a__b--c_-d!", "a_b-c_d"),
        ("__leading and trailing__", "leading_and_trailing"),
        ("__already_legal__", "__already_legal__"),
        ("filter[status]", "filter_status"),
    ],
)
def test_sanitize_tool_name(raw: str, expected: str) -> None:
    assert sanitize_tool_name(raw) == expected


def test_names_with_no_latin_characters_get_a_hash_of_the_original() -> None:
    weather, news = sanitize_tool_name("天气"), sanitize_tool_name("新闻")
    assert re.fullmatch(r"tool_[0-9a-f]{8}", weather)
    assert weather != news
    assert sanitize_tool_name("天气") == weather  # deterministic
    assert re.fullmatch(r"tool_[0-9a-f]{8}", sanitize_tool_name(""))


def test_long_names_are_cut_with_a_hash_so_shared_prefixes_stay_distinct() -> None:
    prefix = "x" * 190
    first, second = sanitize_tool_name(prefix + "_alpha"), sanitize_tool_name(prefix + "_beta")
    assert len(first) == len(second) == 64
    assert first != second
    assert first.startswith("x" * 55 + "_")
    assert LEGAL.fullmatch(first)
    assert sanitize_tool_name(prefix + "_alpha") == first


def test_a_200_character_name_with_illegal_characters() -> None:
    raw = "/".join(["segment"] * 25)
    name = sanitize_tool_name(raw)
    assert len(raw) == 199
    assert len(name) == 64
    assert LEGAL.fullmatch(name)


def test_a_legal_64_character_name_is_kept_and_65_is_cut() -> None:
    assert sanitize_tool_name("a" * 64) == "a" * 64
    cut = sanitize_tool_name("a" * 65)
    assert len(cut) == 64
    assert cut != "a" * 64


def test_max_len_is_honoured() -> None:
    assert len(sanitize_tool_name("n" * 100, max_len=30)) == 30
    with pytest.raises(ValueError, match="max_len must be at least 10"):
        sanitize_tool_name("x", max_len=5)


def test_unique_names_keep_the_first_and_hash_the_rest() -> None:
    names = unique_tool_names(["get.pets", "get_pets", "get pets", "other"])
    assert names[0] == "get_pets"
    assert names[3] == "other"
    assert re.fullmatch(r"get_pets_[0-9a-f]{6}", names[1])
    assert re.fullmatch(r"get_pets_[0-9a-f]{6}", names[2])
    assert len(set(names)) == 4


def test_unique_names_are_deterministic_and_handle_identical_raws() -> None:
    raws = ["dup", "dup", "dup", "dup_2"]
    first = unique_tool_names(raws)
    assert first == unique_tool_names(raws)
    assert len(set(first)) == 4
    assert first[0] == "dup"
    assert all(LEGAL.fullmatch(n) for n in first)


def test_unique_names_of_long_colliding_names_stay_within_the_limit() -> None:
    names = unique_tool_names(["y" * 200, "y" * 200 + "!", "y" * 200 + "?"])
    assert len(set(names)) == 3
    assert all(LEGAL.fullmatch(n) for n in names)


def test_every_unique_name_is_valid() -> None:
    raws = ["a.b", "a_b", "a b", "天气", "新闻", "", "x" * 300, "GET /v1/{id}"]
    for name in unique_tool_names(raws):
        assert validate_tool_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "The tool name is empty."),
        (
            "get pets",
            "The tool name 'get pets' contains characters that are not allowed: ' ' (space); "
            "use only letters A-Z and a-z, digits, '_' and '-'.",
        ),
        (
            "weather.get",
            "The tool name 'weather.get' contains characters that are not allowed: '.'; "
            "use only letters A-Z and a-z, digits, '_' and '-'.",
        ),
        (
            "résumé",
            "The tool name 'résumé' contains characters that are not allowed: 'é'; "
            "use only letters A-Z and a-z, digits, '_' and '-'.",
        ),
        ("a" * 65, "The tool name 'aaaaaaaaaaaaaaaaaaaa'... is 65 characters long; the limit is 64."),
        (42, "The tool name must be a string, not int."),
    ],
)
def test_validate_tool_name_says_what_is_wrong(name: object, message: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        validate_tool_name(name)
    assert excinfo.value.message == message
    assert excinfo.value.field == "name"


def test_mcp_names_follow_the_specifications_looser_rule() -> None:
    assert mcp_tool_name_problem("github.create_issue") is None
    assert mcp_tool_name_problem("x" * 128) is None
    assert mcp_tool_name_problem("x" * 129) == "'xxxxxxxxxxxxxxxxxxxx'... is 129 characters long; MCP allows 128"
    assert mcp_tool_name_problem("get weather") == (
        "'get weather' contains characters MCP does not allow in tool names: ' ' (space)"
    )
    assert mcp_tool_name_problem("") == "the tool name is empty"
