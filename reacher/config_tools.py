"""Helpers shared by the typed config dataclasses of every core.

A config field is documented by the string literal under it (as in cleanrl's ``Args``);
these helpers read those docstrings so that error messages, ``--help`` and the ROS
``ParameterDescriptor`` all say the same thing.
"""

from __future__ import annotations

import ast
from dataclasses import fields, is_dataclass
import functools
import inspect
import math
import textwrap
from typing import Any, TypeVar

T = TypeVar('T')


def field_docs(cls: type) -> dict[str, str]:
    """Return the docstring written under each field of a dataclass.

    :param cls: a dataclass defined in a source file.
    :return: field name -> one-line docstring (fields without one are absent).
    """
    return dict(_field_docs(cls))


@functools.cache
def _field_docs(cls: Any) -> tuple[tuple[str, str], ...]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return ()
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = ' '.join(nxt.value.value.split())
    return tuple(docs.items())


def check_fields(config: Any, checks: dict[str, bool]) -> None:
    """Raise for the first failed check, naming the field, its value and its docstring.

    :param config: the dataclass instance being validated.
    :param checks: field name -> whether its value is acceptable.
    :raises ValueError: naming the first field whose check is False, or any float field
        that is not finite.
    """
    cls = type(config)
    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f'{cls.__name__}.{f.name}={value!r} must be a finite number')
    for name, ok in checks.items():
        if not ok:
            doc = field_docs(cls).get(name, '')
            raise ValueError(
                f'{cls.__name__}.{name}={getattr(config, name)!r} is out of range: {doc}')


def config_from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build a config dataclass from a mapping, rejecting unknown keys by name.

    :param cls: the dataclass type.
    :param values: field name -> value; missing fields keep their defaults.
    :return: the config instance.
    :raises ValueError: for an unknown key or an out-of-range value.
    """
    assert is_dataclass(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f'{cls.__name__} has no field(s) {unknown}; known: {sorted(names)}')
    return cls(**values)
