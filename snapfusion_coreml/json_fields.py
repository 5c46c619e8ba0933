"""JSON files read with one clear error (`read_json`), and typed reading of one JSON object of a contract or config file (pipeline.json, a blocks
manifest.json, a UNet layout, the VAE, scheduler and sampling-default configs):
every wrong or missing value is one UserError line, "expected X, got Y (in FILE)".

    fields = JsonFields(data, "latent", "out/pipeline.json")
    height = fields.integer("height", minimum=1)        # "expected latent.height as an integer >= 1, got -8 (in ...)"
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Callable

from .errors import UserError, expected

MISSING: Any = object()


def describe(value: Any) -> str:
    """A short account of a JSON value for error messages: its type, and the value when small."""
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")
    text = repr(value)
    return f"{kind} {text}" if len(text) <= 60 and not isinstance(value, (dict, type(None))) else kind


class JsonFields:
    """The keys of one JSON object at `path` ("" for the top level) of the file `source`."""

    def __init__(self, data: Any, path: str, source: str):
        if not isinstance(data, dict):
            raise expected(f"{path or 'the top level'} as a JSON object", describe(data), source)
        self.data, self.path, self.source = data, path, source

    def name(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str, default: Any = MISSING) -> Any:
        """The value at `key`; `default` when absent or null, an error when no default is given."""
        value = self.data.get(key)
        if value is None:
            if default is MISSING:
                raise expected(f"key {self.name(key)}", "null" if key in self.data else "none", self.source)
            return default
        return value

    def fail(self, key: str | int, what: str, value: Any) -> UserError:
        return expected(f"{self.name(key)} as {what}", describe(value), self.source)

    def _checked(self, key: str, default: Any, ok: Callable[[Any], bool], what: str) -> Any:
        """The value at `key` when ok(value), else the error "expected KEY as WHAT"; `default` when
        absent or null (raw)."""
        if not self.has(key):
            return self.raw(key, default)
        value = self.data[key]
        if not ok(value):
            raise self.fail(key, what, value)
        return value

    def integer(self, key: str, minimum: int | None = None, default: Any = MISSING) -> int:
        if not self.has(key):
            return self.raw(key, default)
        return self._integer(key, self.data[key], minimum)

    def _integer(self, key: str | int, value: Any, minimum: int | None) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
            raise self.fail(key, "an integer" + (f" >= {minimum}" if minimum is not None else ""), value)
        return value

    def number(self, key: str, minimum: float | None = None, default: Any = MISSING) -> float | int:
        """A finite int or float as written (6 stays 6, 0.8 stays 0.8); Python's parser reads NaN and
        Infinity, which no contract file may hold."""
        return self._checked(key, default, lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      and math.isfinite(v) and (minimum is None or v >= minimum)),
                             "a finite number" + (f" >= {minimum}" if minimum is not None else ""))

    def positive(self, key: str) -> float | int:
        """A finite number > 0."""
        value = self.number(key)
        if not value > 0:
            raise self.fail(key, "a number > 0", value)
        return value

    def fraction(self, key: str) -> float | int:
        """A number strictly between 0 and 1 (a probability that must be neither)."""
        value = self.number(key)
        if not 0 < value < 1:
            raise self.fail(key, "a number in (0, 1)", value)
        return value

    def file_name(self, key: str, default: Any = MISSING) -> str:
        """The name of a file or folder beside the JSON file: no separators, not . or .., so the
        path cannot leave the folder."""
        if not self.has(key):
            return self.raw(key, default)
        value = self.string(key)
        if not is_file_name(value):
            raise self.fail(key, "a file name inside the folder (no / or \\, not . or ..)", value)
        return value

    def file_names(self, key: str, default: Any = MISSING) -> tuple[str, ...]:
        values = self.strings(key, default)
        for value in values:
            if not is_file_name(value):
                raise self.fail(key, "a list of file names inside the folder (no / or \\, not . or ..)", values)
        return values

    def boolean(self, key: str, default: Any = MISSING) -> bool:
        return self._checked(key, default, lambda v: isinstance(v, bool), "true or false")

    def text(self, key: str, default: Any = MISSING) -> str:
        """Any string, the empty one included (a free-text description)."""
        return self._checked(key, default, lambda v: isinstance(v, str), "a string")

    def string(self, key: str, choices: tuple[str, ...] = (), default: Any = MISSING) -> str:
        return self._checked(key, default, lambda v: isinstance(v, str) and bool(v) and (not choices or v in choices),
                             " or ".join(choices) if choices else "a non-empty string")

    def object(self, key: str, default: Any = MISSING) -> "JsonFields":
        if not self.has(key):
            self.raw(key, default)
            return JsonFields({}, self.name(key), self.source)
        return JsonFields(self.data[key], self.name(key), self.source)

    def items(self, key: str, default: Any = MISSING) -> list[Any]:
        if not self.has(key):
            return list(self.raw(key, default))
        value = self.data[key]
        if not isinstance(value, (list, tuple)):  # a tuple: a config dict built in Python (diffusers' FrozenDict)
            raise self.fail(key, "a list", value)
        return list(value)

    def objects(self, key: str, default: Any = MISSING) -> list["JsonFields"]:
        """A list of JSON objects, each as JsonFields at `key[i]`."""
        name = self.name(key)
        return [JsonFields(item, f"{name}[{i}]", self.source) for i, item in enumerate(self.items(key, default))]

    def integers(self, key: str, minimum: int | None = None, default: Any = MISSING) -> tuple[int, ...]:
        values = self.items(key, default)
        inner = JsonFields({}, self.name(key), self.source)
        return tuple(inner._integer(i, v, minimum) for i, v in enumerate(values))

    def strings(self, key: str, default: Any = MISSING) -> tuple[str, ...]:
        values = self.items(key, default)
        if not all(isinstance(v, str) and v for v in values):
            raise self.fail(key, "a list of non-empty strings", values)
        return tuple(values)


def is_file_name(value: str) -> bool:
    """One path component that stays in its folder."""
    return bool(value) and "/" not in value and "\\" not in value and "\0" not in value and value not in (".", "..")


# How a dataclass field of each declared type is read from JSON (the field types config.py's dataclasses declare).
_READERS = {
    "int": JsonFields.integer, "int | None": JsonFields.integer, "float": JsonFields.number,
    "bool": JsonFields.boolean, "str": JsonFields.text,
    "tuple[int, ...]": JsonFields.integers, "tuple[str, ...]": JsonFields.strings,
}


def typed_fields(cls, fields: JsonFields, **readers) -> dict[str, Any]:
    """Every field of the dataclass `cls` read from `fields` by its declared type (json_fields'
    one-line errors); an absent or null key takes the field's default, a field without one must
    be given. `readers` read other fields: (fields, key, default) -> value. Unknown keys are left
    to the caller."""
    kwargs = {}
    for field in dataclasses.fields(cls):
        default = MISSING if field.default is dataclasses.MISSING else field.default
        if field.name in readers:
            kwargs[field.name] = readers[field.name](fields, field.name, default)
        else:
            kwargs[field.name] = _READERS[field.type](fields, field.name, default=default)
    return kwargs


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`, with one clear error for missing or invalid files."""
    if not path.is_file():
        raise UserError(f"expected {what} at {path}, found none")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"expected {what} as JSON, got invalid JSON: {exc} (in {path})") from None
    except RecursionError:
        data = None  # nested deeper than the parser goes
    except OSError as exc:  # a folder named like the file, unreadable, a symlink loop
        raise UserError(f"expected {what} as a readable file, got \"{exc.strerror}\" (in {path})") from None
    if data is None or _depth(data) > MAX_JSON_DEPTH:
        raise UserError(f"expected {what} nested at most {MAX_JSON_DEPTH} levels deep, got deeper nesting (in {path})")
    if not isinstance(data, dict):
        raise UserError(f"expected {what} as a JSON object, got {type(data).__name__} (in {path})")
    return data


MAX_JSON_DEPTH = 32  # every file we read nests at most 6 levels; anything deeper is malformed


def _depth(data: Any) -> int:
    """How deeply lists and objects nest in `data` (iterative: any depth is measured safely)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest
