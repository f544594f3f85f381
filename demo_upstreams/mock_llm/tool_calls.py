"""When and how the mock answers with a tool call.

A chat request that offers ``tools`` gets a tool call instead of text when:

- ``tool_choice`` forces a function (``{"type": "function", "function": {"name": ...}}``): that
  function is called;
- ``tool_choice`` is ``"required"``; or
- the last message is the user's and contains "call tool" (any case), and ``tool_choice`` is
  not ``"none"``.

The function called is the forced one, else the one named right after "call tool" (as in
"call tool get_weather ..."), else the first tool. Its arguments are the first JSON object
written after "call tool" in the user's message (as in ``call tool add {"a": 1, "b": 2}``),
else a sample built from the function's parameter schema: every required property (every
property, when none is required) gets its default, its first enum value, or a placeholder of
its type. After a ``tool`` message the mock answers in text, so an agent loop terminates.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from demo_upstreams.mock_llm.errors import bad_request
from demo_upstreams.mock_llm.text import content_text

JSONObject = dict[str, Any]
TRIGGER = "call tool"
_NAME = re.compile(r"\s*([A-Za-z0-9_.-]+)")
_PLACEHOLDERS: dict[str, Any] = {"string": "demo", "integer": 1, "number": 1.0, "boolean": True, "null": None}


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, serialized, as OpenAI sends it

    def as_message_part(self) -> JSONObject:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def function_tools(tools: object) -> list[JSONObject]:
    """The ``function`` objects of a request's ``tools`` (validated), in order."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad_request("tools must be a list", param="tools", code="invalid_type")
    functions: list[JSONObject] = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise bad_request(
                "each tool must be {'type': 'function', 'function': {...}}",
                param=f"tools[{index}]",
                code="invalid_type",
            )
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise bad_request("a function needs a name", param=f"tools[{index}].function.name", code="invalid_value")
        parameters = function.get("parameters", {})
        if not isinstance(parameters, dict):
            raise bad_request(
                "parameters must be a JSON schema object",
                param=f"tools[{index}].function.parameters",
                code="invalid_type",
            )
        functions.append(function)
    return functions


def forced_function(tool_choice: object, names: Sequence[str]) -> str | None:
    """The function name ``tool_choice`` forces, or None; a bad ``tool_choice`` is a 400."""
    if tool_choice is None or tool_choice in ("none", "auto", "required"):
        return None
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name in names:
            return name
        raise bad_request(f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
    raise bad_request("tool_choice must be 'none', 'auto', 'required' or a function", param="tool_choice")


def plan_tool_call(
    functions: Sequence[JSONObject], tool_choice: object, messages: Sequence[JSONObject]
) -> ToolCall | None:
    """The tool call this request gets, or None when it gets text (see the module's rules)."""
    if not functions or tool_choice == "none":
        return None
    names = [str(function["name"]) for function in functions]
    forced = forced_function(tool_choice, names)
    last = messages[-1] if messages else {}
    user_text = content_text(last.get("content")) if last.get("role") == "user" else ""
    trigger_at = user_text.lower().find(TRIGGER)
    if forced is None and tool_choice != "required" and trigger_at < 0:
        return None
    after_trigger = user_text[trigger_at + len(TRIGGER) :] if trigger_at >= 0 else ""
    name = forced or _named_in(after_trigger, names) or names[0]
    function = functions[names.index(name)]
    arguments = _json_object_in(after_trigger)
    if arguments is None:
        arguments = sample_arguments(function.get("parameters") or {})
    return ToolCall(id=f"call_{secrets.token_hex(12)}", name=name, arguments=json.dumps(arguments))


def _named_in(text: str, names: Sequence[str]) -> str | None:
    match = _NAME.match(text)
    return match.group(1) if match and match.group(1) in names else None


def _json_object_in(text: str) -> JSONObject | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _end = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def sample_arguments(schema: JSONObject) -> JSONObject:
    """Arguments that fit a function's ``parameters`` object schema, deterministically."""
    value = sample_value(schema)
    return value if isinstance(value, dict) else {}


def sample_value(schema: object) -> Any:
    if not isinstance(schema, dict):
        return _PLACEHOLDERS["string"]
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return sample_value(options[0])
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        required = [name for name in schema.get("required") or () if name in properties] or list(properties)
        return {name: sample_value(properties[name]) for name in required}
    if kind == "array":
        minimum = schema.get("minItems", 0)
        return [sample_value(schema.get("items")) for _ in range(minimum if isinstance(minimum, int) else 0)]
    if kind in ("integer", "number") and isinstance(schema.get("minimum"), int | float):
        return schema["minimum"]
    return _PLACEHOLDERS.get(str(kind), _PLACEHOLDERS["string"])
