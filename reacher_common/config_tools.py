"""Helpers shared by the typed config dataclasses of every core.

A config field is documented by the string literal under it (as in cleanrl's ``Args``);
these helpers read those docstrings so that error messages, ``--help`` and the ROS
``ParameterDescriptor`` all say the same thing. A numeric field's allowed range is written
once, beside its default (:func:`bounded`): :func:`check_fields` enforces it and the
node shells declare it as the parameter's ``FloatingPointRange`` / ``IntegerRange``.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, Field, field, fields, is_dataclass, MISSING
import functools
import inspect
import math
import textwrap
from typing import Any, TypeVar

T = TypeVar('T')

RANGE_KEY = 'range'
"""The key of a field's :class:`Range` in ``dataclasses.field(metadata=...)``."""


@dataclass(frozen=True)
class Range:
    """The values a numeric config field accepts: from ``low`` to ``high``.

    :param low: the smallest value (excluded when ``low_open``).
    :param high: the largest value (excluded when ``high_open``).
    :param low_open: whether ``low`` itself is refused.
    :param high_open: whether ``high`` itself is refused.
    """

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        return (f'{"(" if self.low_open else "["}{self.low:g}, '
                f'{self.high:g}{")" if self.high_open else "]"}')


def bounded(default: Any, low: float, high: float, *, low_open: bool = False,
            high_open: bool = False) -> Any:
    """A dataclass field with a default and the range of values it accepts.

    ``kp: float = bounded(2.5, 0.0, 100.0)``. :func:`check_fields` refuses a value
    outside the range, naming the field; a node declares the range in the parameter's
    descriptor, so ``ros2 param describe`` shows it and ``ros2 param set`` is refused
    beyond it.

    :param default: the field's default, inside the range.
    :param low: the smallest value.
    :param high: the largest value.
    :param low_open: whether ``low`` itself is refused (``(low, high]``).
    :param high_open: whether ``high`` itself is refused.
    :return: a ``dataclasses.field``.
    """
    allowed = Range(float(low), float(high), low_open, high_open)
    assert default in allowed, f'default {default!r} outside {allowed}'
    return field(default=default, metadata={RANGE_KEY: allowed})


def field_range(config_field: Field[Any]) -> Range | None:
    """The :class:`Range` declared with :func:`bounded`, or None."""
    allowed = config_field.metadata.get(RANGE_KEY)
    return allowed if isinstance(allowed, Range) else None


class FieldError(ValueError):
    """A config field holds a value it does not accept.

    ``str()`` names the Python field (``PidConfig.kp=-1.0 is out of range ...``);
    ``field`` and ``detail`` let a node name the ROS parameter instead.

    :param owner: the config class's name.
    :param field: the field's name.
    :param detail: what is wrong, starting with the value (``'=-1.0 is out of range'``).
    """

    def __init__(self, owner: str, field: str, detail: str) -> None:
        super().__init__(f'{owner}.{field}{detail}')
        self.owner = owner
        self.field = field
        self.detail = detail


def field_docs(cls: type) -> dict[str, str]:
    """Return the docstring written under each field of a dataclass.

    :param cls: a dataclass defined in a source file; the fields it inherits carry their
        base class's docstrings.
    :return: field name -> one-line docstring (fields without one are absent).
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(_field_docs(klass))
    return docs


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


def check_fields(config: Any, checks: dict[str, bool] | None = None) -> None:
    """Raise for the first failed check, naming the field, its value and its docstring.

    Every float must be finite, every field declared with :func:`bounded` inside its
    range; ``checks`` adds what a range cannot say (one field against another).

    :param config: the dataclass instance being validated.
    :param checks: field name -> whether its value is acceptable.
    :raises FieldError: naming the first field that is not finite, outside its range or
        whose check is False.
    """
    cls = type(config)
    owner = cls.__name__
    for f in fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise FieldError(owner, f.name, f'={value!r} must be a finite number')
        allowed = field_range(f)
        if allowed is not None and value not in allowed:
            raise FieldError(owner, f.name, f'={value!r} is out of range {allowed}'
                             + _doc_suffix(cls, f.name))
    for name, ok in (checks or {}).items():
        if not ok:
            raise FieldError(owner, name, f'={getattr(config, name)!r} is out of range'
                             + _doc_suffix(cls, name))


def _doc_suffix(cls: type, name: str) -> str:
    """': <docstring>' of a field, or '' when it has none."""
    doc = field_docs(cls).get(name, '')
    return f': {doc}' if doc else ''


def config_from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build a config dataclass from a mapping, rejecting unknown keys by name.

    :param cls: the dataclass type.
    :param values: field name -> value; missing fields keep their defaults; a nested config
        field may be given as a mapping of its own fields.
    :return: the config instance.
    :raises ValueError: for an unknown key or an out-of-range value.
    """
    assert is_dataclass(cls)
    by_name = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ValueError(f'{cls.__name__} has no field(s) {unknown}; known: {sorted(by_name)}')
    built = dict(values)
    for name, value in values.items():
        # A nested config given as a mapping (JSON, ``asdict``) is built the same way.
        nested = _nested_config_type(by_name[name])
        if nested is not None and isinstance(value, Mapping):
            built[name] = config_from_dict(nested, dict(value))
    return cls(**built)


def _nested_config_type(field: Any) -> type | None:
    """The dataclass type of a field whose default is a dataclass instance, else None."""
    if field.default_factory is not MISSING:
        default = field.default_factory()
        if is_dataclass(default):
            return type(default)
    return None


def node_parameters(documents: Sequence[Mapping[str, Any]], node_name: str) -> dict[str, Any]:
    """The ROS parameters that parameter files give one node, flattened.

    Reads each document's ``ros__parameters`` under the keys that match the node the way
    ``--params-file`` does for a node in the root namespace (``/**``, ``node_name``,
    ``/node_name``, ``/**/node_name``); later documents win. Nested mappings become dotted
    names (``pid: {kp: 2.5}`` -> ``pid.kp``).

    :param documents: parsed YAML parameter files, in the order they are given.
    :param node_name: the node's name, e.g. ``'perception_node'``.
    :return: parameter name -> value.
    :raises ValueError: when a document is not a ROS parameter file.
    """
    keys = ('/**', node_name, f'/{node_name}', f'/**/{node_name}')
    values: dict[str, Any] = {}
    for document in documents:
        if not isinstance(document, Mapping):
            raise ValueError('a ROS parameter file must be a mapping of node names')
        for key in keys:
            section = document.get(key)
            if section is None:
                continue
            if not isinstance(section, Mapping) or 'ros__parameters' not in section:
                raise ValueError(f'{key!r} has no ros__parameters mapping')
            values.update(_flatten(section['ros__parameters']))
    return values


def _flatten(mapping: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def config_from_parameters(cls: type[T], values: Mapping[str, Any],
                           **nested: type) -> T:
    """Build a config from flat ROS parameters, its nested configs from the same names.

    ``config_from_parameters(PerceptionConfig, values, geometry=ArmGeometry)`` takes the
    ``ArmGeometry`` fields out of ``values`` for ``geometry`` and the rest for
    ``PerceptionConfig`` itself, as the node declares them.

    :param cls: the config dataclass.
    :param values: parameter name -> value (e.g. from :func:`node_parameters`).
    :param nested: field name -> dataclass of each nested config field.
    :return: the config.
    :raises ValueError: for an unknown name or an out-of-range value.
    """
    remaining = dict(values)
    built: dict[str, Any] = {}
    for name, nested_cls in nested.items():
        assert is_dataclass(nested_cls)
        names = {f.name for f in fields(nested_cls)}
        built[name] = config_from_dict(
            nested_cls, {key: remaining.pop(key) for key in list(remaining) if key in names})
    return config_from_dict(cls, {**remaining, **built})
