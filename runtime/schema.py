"""manifest.schema.json, the one statement of manifest.json's structure and limits, and a small interpreter of it.

The Node.js runtime walks the same file with bindings/node/lib/schema.js in the same order, so both refuse a
manifest at the same field with the same ``code``. The subset of JSON Schema (draft 2020-12) read here:
$ref (local), type, const, enum, minimum, exclusiveMinimum, maximum, minLength, maxLength, pattern (anchored),
minItems, maxItems, items, uniqueItems, minProperties, maxProperties, required, properties,
additionalProperties, if/then/else, allOf; and ``x-fix``, the fix a refusal adds to its message. An integer
is a number without a fraction (JSON has one number type: 32.0 is the integer 32).

Before the schema, ``read_json`` holds the text to strict JSON (RFC 8259: UTF-8, no byte order mark, no
NaN or Infinity) nested at most ``x-limits.max_depth`` deep; an integer beyond a double's range reads as
infinity, as JavaScript reads it.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BundleError

__all__ = ["SCHEMA_FILE", "schema", "at", "limits", "validate", "read_json", "show"]

SCHEMA_FILE = Path(__file__).with_name("manifest.schema.json")
MAX_FLOAT = sys.float_info.max
_MAX_FLOAT_INT = int(MAX_FLOAT)
_NUMBER_KEYS = ("minimum", "exclusiveMinimum", "maximum")


@functools.lru_cache(maxsize=None)
def schema() -> dict[str, Any]:
    """The parsed schema file."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def at(pointer: str) -> Any:
    """The part of the schema at a JSON pointer such as ``#/$defs/size/maximum``."""
    node: Any = schema()
    for part in pointer.lstrip("#").strip("/").split("/"):
        if part:
            node = node[int(part)] if isinstance(node, list) else node[part.replace("~1", "/").replace("~0", "~")]
    return node


def limits() -> dict[str, int]:
    """What bounds the file before it is parsed: ``max_bytes`` and ``max_depth``."""
    return schema()["x-limits"]


def show(value: Any, width: int = 80) -> str:
    """``repr(value)`` cut to ``width`` characters (a refusal's message stays short whatever the manifest holds)."""
    if isinstance(value, (list, tuple)):
        value = list(value[:width // 2])
    elif isinstance(value, dict):
        value = dict(list(value.items())[:width // 4])
    elif isinstance(value, str):
        value = value[:width]
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def type_name(value: Any) -> str:
    """The JSON type of a value: null, boolean, integer, number, string, array or object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _is(value: Any, kind: str) -> bool:
    found = type_name(value)
    if kind == "integer":
        return found == "integer" or (found == "number" and value.is_integer())
    return found == kind or (kind == "number" and found == "integer")


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 and 1.0 are equal, true and 1 are not."""
    number = (int, float)
    if isinstance(a, bool) or isinstance(b, bool) or not (isinstance(a, number) and isinstance(b, number)):
        return type(a) is type(b) and a == b
    return a == b


class _Walk:
    """One validation: ``where`` names the document in messages (``manifest.json``, ``vocabulary``)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, code: str, field: str, text: str, node: dict | None = None) -> BundleError:
        fix = (node or {}).get("x-fix")
        subject = f"{self.where}: {field}" if field else self.where
        return BundleError(f"{subject} {text}{'; ' + fix if fix else ''}", code=code, field=field)

    def check(self, value: Any, node: dict, field: str) -> None:
        if "$ref" in node:
            self.check(value, at(node["$ref"]), field)
        kinds = node.get("type")
        if kinds is not None:
            kinds = [kinds] if isinstance(kinds, str) else kinds
            if not any(_is(value, k) for k in kinds):
                wanted = " or ".join(_A.get(k, k) for k in kinds)
                raise self.fail("type", field, f"must be {wanted}, got {type_name(value)} {show(value)}", node)
        if "const" in node and not _same(value, node["const"]):
            raise self.fail("const", field, f"must be {show(node['const'])}, got {show(value)}", node)
        if "enum" in node and not any(_same(value, e) for e in node["enum"]):
            raise self.fail("enum", field, f"must be one of {node['enum']}, got {show(value)}", node)
        kind = type_name(value)
        if kind in ("integer", "number"):
            self.number(value, node, field)
        elif kind == "string":
            self.string(value, node, field)
        elif kind == "array":
            self.array(value, node, field)
        elif kind == "object":
            self.object(value, node, field)
        if "if" in node:
            branch = node.get("then") if self.valid(value, node["if"], field) else node.get("else")
            if branch is not None:
                self.check(value, branch, field)
        for part in node.get("allOf", ()):
            self.check(value, part, field)

    def valid(self, value: Any, node: dict, field: str) -> bool:
        try:
            self.check(value, node, field)
        except BundleError:
            return False
        return True

    def number(self, value: float, node: dict, field: str) -> None:
        low, above, high = (node.get(k) for k in _NUMBER_KEYS)
        if (low is not None and not value >= low) or (above is not None and not value > above) or (
                high is not None and not value <= high):
            raise self.fail("range", field, f"must be {_range_text(node)}, got {show(value)}", node)

    def string(self, value: str, node: dict, field: str) -> None:
        low, high = node.get("minLength"), node.get("maxLength")
        if low is not None and len(value) < low:
            raise self.fail("too_short", field, f"must have at least {_count(low, 'character')}, got {show(value)}",
                            node)
        if high is not None and len(value) > high:
            raise self.fail("too_long", field, f"must have at most {_count(high, 'character')}, got {len(value)}: "
                                               f"{show(value)}", node)
        if "pattern" in node and not _pattern(node["pattern"]).fullmatch(value):
            raise self.fail("pattern", field, f"must match {node['pattern']}, got {show(value)}", node)

    def entries(self, value: list | dict, node: dict, field: str, low_key: str, high_key: str) -> None:
        """How many entries a list or an object has, against the node's bounds (minItems/maxItems, ...)."""
        low, high = node.get(low_key), node.get(high_key)
        if low is not None and len(value) < low:
            raise self.fail("too_few", field, f"needs at least {_count(low, 'entry')}, got {len(value)}", node)
        if high is not None and len(value) > high:
            raise self.fail("too_many", field, f"has {len(value)} entries, more than {high}", node)

    def array(self, value: list, node: dict, field: str) -> None:
        self.entries(value, node, field, "minItems", "maxItems")
        items = node.get("items")
        if items is not None and not _all_plainly_valid(value, items):
            for i, item in enumerate(value):
                self.check(item, items, f"{field}[{i}]")
        if node.get("uniqueItems") and not _plainly_unique(value):
            seen: set = set()
            for i, item in enumerate(value):
                key = _key(item)
                if key in seen:
                    raise self.fail("duplicate", f"{field}[{i}]", f"repeats an earlier entry: {show(item)}", node)
                seen.add(key)

    def object(self, value: dict, node: dict, field: str) -> None:
        self.entries(value, node, field, "minProperties", "maxProperties")
        known, required = node.get("properties", {}), node.get("required", ())
        extra = node.get("additionalProperties", True)
        if extra is False:
            unknown = sorted(k for k in value if k not in known)
            if unknown:
                raise self.fail("unknown_field", _child(field, unknown[0]),
                                f"is not a field of {field or 'the manifest'} (its fields: {list(known)}); remove it "
                                "or correct its name")
        for key, sub in known.items():
            if key in value:
                self.check(value[key], sub, _child(field, key))
            elif key in required:
                raise self.fail("missing", _child(field, key), "is missing", sub)
        for key in required:
            if key not in known and key not in value:
                raise self.fail("missing", _child(field, key), "is missing")
        if isinstance(extra, dict):
            for key in sorted(k for k in value if k not in known):
                self.check(value[key], extra, _child(field, key))


_A = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
      "array": "a list", "object": "an object"}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun if n == 1 else noun.removesuffix('y') + 'ies' if noun.endswith('y') else noun + 's'}"


def _key(item: Any) -> tuple:
    """What uniqueItems compares: JSON equality (1 and 1.0 alike, true and 1 not)."""
    kind = type_name(item)
    if kind in ("array", "object"):
        return kind, json.dumps(item, sort_keys=True)
    return ("number", item) if kind == "integer" else (kind, item)


def _child(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _range_text(node: dict) -> str:
    low, above, high = (node.get(k) for k in _NUMBER_KEYS)
    kinds = node.get("type", "number")
    noun = "an integer" if "integer" in kinds and "number" not in kinds else "a number"
    if high == MAX_FLOAT:
        noun, high = "a finite number", None
        low = None if low == -MAX_FLOAT else low
    if low is not None and high is not None:
        return f"{noun} in [{low}, {high}]"
    if above is not None and high is not None:
        return f"{noun} in ({above}, {high}]"
    bounds = [f">= {low}" if low is not None else "", f"> {above}" if above is not None else "",
              f"<= {high}" if high is not None else ""]
    return " ".join([noun] + [b for b in bounds if b])


@functools.lru_cache(maxsize=None)
def _pattern(pattern: str) -> re.Pattern:
    """A schema pattern, anchored by ^...$ in the file; Python's $ would also match before a final newline."""
    return re.compile(pattern.removeprefix("^").removesuffix("$"))


def _all_plainly_valid(values: list, items: dict) -> bool:
    """A fast pass for long lists of plain strings or numbers (a vocabulary's tokens, a side's means):
    True when every item is valid; False sends the caller to the item-by-item walk that names the first bad one."""
    node = at(items["$ref"]) if set(items) == {"$ref"} else items
    kind, types = node.get("type"), set(map(type, values))
    if not values:
        return True
    if kind == "string" and set(node) <= {"type", "minLength", "maxLength"} and types == {str}:
        lengths = list(map(len, values))
        return node.get("minLength", 0) <= min(lengths) and max(lengths) <= node.get("maxLength", math.inf)
    if kind == "number" and set(node) <= {"type", *_NUMBER_KEYS} and types <= {int, float}:
        low, high, above = min(values), max(values), node.get("exclusiveMinimum")
        return (node.get("minimum", -math.inf) <= low and high <= node.get("maximum", math.inf)
                and (above is None or low > above))
    return False


def _plainly_unique(values: list) -> bool:
    """A fast pass for uniqueItems over strings: True when no string repeats."""
    return set(map(type, values)) <= {str} and len(set(values)) == len(values)


def validate(value: Any, pointer: str = "#", *, where: str = "manifest.json", field: str = "") -> None:
    """Check ``value`` against the schema at ``pointer``; the first violation is a BundleError whose ``field``
    is its path below ``field`` and whose ``code`` names the keyword (type, missing, range, ...)."""
    _Walk(where).check(value, at(pointer), field)


def read_json(data: bytes, file: str) -> Any:
    """The manifest's bytes as JSON, held to strict JSON and to the schema's x-limits (a BundleError otherwise)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{file}: not valid UTF-8 ({exc}); the manifest is corrupt: export the bundle again",
                          code="not_utf8") from exc
    if text.startswith("\ufeff"):
        raise BundleError(f"{file}: starts with a byte order mark; write it as UTF-8 without one",
                          code="bom")
    if nesting_depth(text) > limits()["max_depth"]:
        raise BundleError(f"{file}: JSON nested more than {limits()['max_depth']} deep, too deeply to be a manifest; "
                          "the manifest is corrupt", code="too_deep")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=_json_int)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"{file}: not valid JSON ({exc}); the manifest is corrupt: export the bundle again",
                          code="not_json") from exc


def nesting_depth(text: str) -> int:
    """The deepest nesting of [ and { outside strings (bindings/node/lib/schema.js counts it the same way):
    escaped backslashes and quotes dropped, then each quoted run, then all but the brackets."""
    plain = re.sub(r'"[^"]*"', "", text.replace("\\\\", "").replace('\\"', ""))
    outside = re.sub(r"[^\[\]{}]+", "", plain)
    steps = np.frombuffer(outside.encode("ascii"), np.uint8)
    return int(np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1)).max(initial=0))


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON: a manifest holds finite numbers only")


def _json_int(text: str) -> int | float:
    """An integer literal: exact, or infinity past a double's range (as JSON.parse reads it)."""
    value = int(text) if len(text) <= 320 else None
    if value is None or abs(value) > _MAX_FLOAT_INT:
        return -math.inf if text.startswith("-") else math.inf
    return value
