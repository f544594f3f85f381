from __future__ import annotations

import pytest

from marketplace.specs.documents import MAX_DEPTH, load_document, load_mapping
from marketplace.specs.errors import SpecError, format_path


def test_json_and_yaml_give_the_same_plain_data() -> None:
    from_json = load_document('{"a": [1, 2.5, true, null], "b": {"c": "d"}}', max_bytes=1000)
    from_yaml = load_document("a: [1, 2.5, true, null]\nb:\n  c: d\n", max_bytes=1000)
    assert from_json == from_yaml == {"a": [1, 2.5, True, None], "b": {"c": "d"}}


def test_yaml_integer_keys_and_dates_become_strings() -> None:
    data = load_document("responses:\n  200: {description: ok}\nreleased: 2024-05-01\n", max_bytes=1000)
    assert data == {"responses": {"200": {"description": "ok"}}, "released": "2024-05-01"}


def test_bytes_with_a_byte_order_mark_are_accepted() -> None:
    assert load_document('\ufeff{"a": 1}'.encode(), max_bytes=100) == {"a": 1}


def test_oversize_text_is_refused_before_parsing() -> None:
    with pytest.raises(SpecError) as excinfo:
        load_document("a: " + "x" * 200, max_bytes=100)
    assert excinfo.value.message == "The document is 203 bytes; the limit is 100 bytes."


def test_oversize_parsed_mapping_is_refused_too() -> None:
    with pytest.raises(SpecError, match=r"^The agent card is 1,0\d\d bytes; the limit is 1,000 bytes\.$"):
        load_mapping({"a": "x" * 1000}, max_bytes=1000, what="agent card")


def test_undecodable_bytes_are_refused() -> None:
    with pytest.raises(SpecError, match=r"^The document is not UTF-8 text \(byte 2 cannot be decoded\)\.$"):
        load_document(b'{"\xff": 1}', max_bytes=100)


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_is_refused(text: str) -> None:
    with pytest.raises(SpecError, match=r"^The document is empty\.$"):
        load_document(text, max_bytes=100)


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(SpecError) as excinfo:
        load_document('{\n  "a": 1,\n  "b": }', max_bytes=100)
    assert excinfo.value.message == "The document is not valid JSON: Expecting value at line 3, column 8."


def test_invalid_yaml_names_line_and_column() -> None:
    with pytest.raises(SpecError) as excinfo:
        load_document("a: 1\nb: [1, 2\nc: 3\n", max_bytes=100)
    assert excinfo.value.message.startswith("The document is not valid YAML: ")
    assert "at line 3, column 2." in excinfo.value.message


def test_yaml_python_tags_are_refused_by_the_safe_loader() -> None:
    with pytest.raises(
        SpecError, match=r"could not determine a constructor for the tag 'tag:yaml\.org,2002:python/name:os\.system'"
    ):
        load_document("a: !!python/name:os.system\n", max_bytes=100)


def test_yaml_binary_values_are_refused() -> None:
    with pytest.raises(SpecError, match=r"^x: bytes values are not allowed; use JSON types only\.$"):
        load_document("x: !!binary aGVsbG8=\n", max_bytes=100)


def test_a_few_benign_yaml_aliases_are_expanded() -> None:
    data = load_document("base: &b {type: string}\nfirst: *b\nsecond: *b\n", max_bytes=1000)
    assert data == {"base": {"type": "string"}, "first": {"type": "string"}, "second": {"type": "string"}}


def test_yaml_alias_bomb_is_refused_before_expansion() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(SpecError) as excinfo:
        load_document("\n".join(lines), max_bytes=10_000)
    assert "would expand it by more than 100,000 nodes" in excinfo.value.message


def test_recursive_yaml_alias_is_refused() -> None:
    with pytest.raises(SpecError, match=r"recursive YAML alias"):
        load_document("a: &a\n  - 1\n  - *a\n", max_bytes=100)


def test_root_must_be_a_mapping() -> None:
    with pytest.raises(
        SpecError, match=r"^The document's root must be an object \(a mapping of names to values\), not a list\.$"
    ):
        load_mapping("- 1\n- 2\n", max_bytes=100)


def test_absurd_nesting_is_refused() -> None:
    deep = "[" * (MAX_DEPTH + 50) + "]" * (MAX_DEPTH + 50)
    with pytest.raises(SpecError, match="nested more than"):
        load_document(deep, max_bytes=10_000)


def test_format_path_notation() -> None:
    assert format_path(["paths", "/pets", "get", "parameters", 0, "in"]) == "paths./pets.get.parameters[0].in"
    assert format_path([]) == "(root)"
