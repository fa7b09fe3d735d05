"""`field=value` overrides of a config dataclass (TrainConfig, BenchSettings), e.g. from --set.

Values are parsed by the field's type hint; a dotted field sets a field of a nested dataclass
("model.input_size=227").
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

C = TypeVar("C")  # a (frozen) dataclass


def apply_overrides(config: C, overrides: Sequence[str]) -> C:
    """Applies `field=value` strings, e.g. "batch_size=64" or "model.input_size=227".

    Values are parsed by the field's type: ints, floats, bools (true/false), strings,
    "none" for optional fields, comma-separated tuples ("8,16,16,16,16").

    Raises:
      ValueError: (one line) naming an unknown field or a value of the wrong type.
    """
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"Override {item!r} must look like field=value, e.g. batch_size=64.")
        config = _set(config, key.strip().split("."), raw.strip(), key.strip())
    return config


def _set(obj: Any, path: list[str], raw: str, full: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    name = path[0]
    if name not in hints:
        raise ValueError(
            f"Unknown config field {full!r}: {type(obj).__name__} has no field {name!r}; "
            f"valid fields are {sorted(hints)}."
        )
    kind = hints[name]
    if dataclasses.is_dataclass(kind):
        if len(path) == 1:
            raise ValueError(f"{full!r} is a group of fields; set one, e.g. {full}.<field>=...")
        value = _set(getattr(obj, name), path[1:], raw, full)
    elif len(path) > 1:
        raise ValueError(f"Unknown config field {full!r}: {name!r} has no sub-fields.")
    else:
        value = _parse(raw, kind, full)
    return dataclasses.replace(obj, **{name: value})


def _parse(raw: str, kind: Any, full: str) -> Any:
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null"):
            return None
        (kind,) = [a for a in args if a is not type(None)]
        args = typing.get_args(kind)
    try:
        if typing.get_origin(kind) is tuple:
            parts = [p.strip() for p in raw.strip("()[]").split(",") if p.strip()]
            return tuple(_scalar(p, args[0]) for p in parts)
        return _scalar(raw, kind)
    except ValueError:
        type_name = getattr(kind, "__name__", str(kind))
        if typing.get_origin(kind) is tuple:
            type_name = f"comma-separated {args[0].__name__} values"
        raise ValueError(f"Config field {full!r} expects {type_name}, got {raw!r}.") from None


def _scalar(raw: str, kind: type) -> Any:
    if kind is bool:
        lowered = raw.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(raw)
    if kind in (int, float, str):
        return kind(raw)
    raise ValueError(raw)
