"""ROS parameters from typed config dataclasses, and the checks of parameter files.

Each field of a config dataclass is declared as one ROS parameter with a descriptor (its
docstring, type, range, read-only unless it may change at run time); changes are validated
by the same dataclass; a parameter file that is missing, unparsable or gives a node a key
it does not have stops the start with one sentence. The node shells use this through
``reacher_common.ros_utils``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import Field, fields, MISSING, replace
from pathlib import Path
from typing import Any, TypeVar

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from reacher_common.config_tools import config_from_dict, field_docs, field_range, FieldError

C = TypeVar('C')

JOINT_NAMES = ('shoulder', 'elbow')
"""Joint names in sensor_msgs/JointState, in the order of every joint array."""
WORLD_FRAME = 'world'
CAMERA_FRAME = 'camera'



class ParameterError(ValueError):
    """A ROS parameter is missing, of the wrong type, or out of range."""


def _coerce(cls: type, name: str, field_name: str, value: Any, default: Any) -> Any:
    """Convert a parameter value to the type of the field's default, or raise.

    An integer is taken for a float field (YAML writes ``kp: 4``); nothing else changes
    type.
    """
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    else:
        return value
    doc = field_docs(cls).get(field_name, '')
    raise ParameterError(
        f'parameter {name} must be a {type(default).__name__}, got {_short(value)}'
        + (f': {doc}' if doc else ''))


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value, cut to ``limit`` characters (a parameter may be a long list)."""
    text = repr(value)
    return text if len(text) <= limit else f'{text[:limit]}... ({len(text)} characters)'


def parameter_message(error: ValueError, prefix: str = '') -> str:
    """An error of a config as a ROS user reads it: 'parameter pid.kp=...'.

    :param error: a :class:`FieldError` (which names the Python field) or another
        ``ValueError``.
    :param prefix: the parameter prefix of the config the error came from.
    :return: the message naming the ROS parameter.
    """
    if isinstance(error, FieldError):
        return f'parameter {prefix}{error.field}{error.detail}'
    return str(error)


def parameter_descriptor(cls: type, config_field: Field[Any], name: str, default: Any,
                         read_only: bool) -> ParameterDescriptor:
    """The descriptor of the parameter of one config field: type, range, docstring.

    :param cls: the config dataclass.
    :param config_field: its field.
    :param name: the parameter's name (with its prefix).
    :param default: the field's default, whose type is the parameter's type.
    :param read_only: whether the node reads it at start-up only.
    :return: a statically typed descriptor; a field declared with
        :func:`reacher_common.config_tools.bounded` gets its range.
    """
    descriptor = ParameterDescriptor(
        name=name, type=Parameter.Type.from_parameter_value(default).value,
        description=field_docs(cls).get(config_field.name, ''), read_only=read_only)
    allowed = field_range(config_field)
    if allowed is not None and isinstance(default, bool):
        allowed = None
    if allowed is not None and isinstance(default, int):
        descriptor.integer_range = [IntegerRange(
            from_value=int(allowed.low), to_value=int(allowed.high), step=1)]
    elif allowed is not None and isinstance(default, float):
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=allowed.low, to_value=allowed.high, step=0.0)]
    if allowed is not None:
        descriptor.additional_constraints = f'in {allowed}'
    if read_only:
        descriptor.additional_constraints = ' '.join(
            [descriptor.additional_constraints, '(read at start-up)']).strip()
    return descriptor


def declare_config(node: Node, cls: type[C], prefix: str = '', base: C | None = None,
                   runtime: Collection[str] = (), **nested: Any) -> C:
    """Declare one ROS parameter per dataclass field and build the config from them.

    Each parameter is named ``prefix + field``, defaults to the field's default (or to
    ``base``'s value), carries the field's docstring as its description and its
    :func:`~reacher_common.config_tools.bounded` range as a ``FloatingPointRange`` or
    ``IntegerRange``, and keeps the type of its default (static typing: ``ros2 param set``
    cannot turn a double into an integer). An integer given at start-up for a float field
    is taken as a float (YAML writes ``kp: 4``). Fields not in ``runtime`` are declared
    ``read_only``: rclpy refuses to change them once the node runs.

    :param node: the node that owns the parameters.
    :param cls: a frozen config dataclass whose ``__post_init__`` validates it.
    :param prefix: parameter name prefix, e.g. ``'pid.'``.
    :param base: values to use as defaults instead of the dataclass defaults.
    :param runtime: the fields that the node applies when they change at run time.
    :param nested: values of the fields that hold a config dataclass (``geometry=...``),
        declared on their own (the shared geometry has no prefix); such fields are not
        declared here.
    :return: the validated config.
    :raises ParameterError: naming the parameter that is of the wrong type or out of range.
    """
    values: dict[str, Any] = dict(nested)
    for config_field in fields(cls):  # type: ignore[arg-type]
        if config_field.name in nested:
            continue
        if base is not None:
            default = getattr(base, config_field.name)
        elif config_field.default is not MISSING:
            default = config_field.default
        else:
            default = config_field.default_factory()  # type: ignore[operator]
        name = prefix + config_field.name
        # Read the start-up value whatever its type (a dynamic declaration), convert it to
        # the field's type, then declare the parameter again statically with that value.
        given = node.declare_parameter(
            name, default, ParameterDescriptor(dynamic_typing=True)).value
        node.undeclare_parameter(name)
        value = _coerce(cls, name, config_field.name, given, default)
        allowed = field_range(config_field)
        if allowed is not None and not isinstance(value, bool) and value not in allowed:
            doc = field_docs(cls).get(config_field.name, '')
            raise ParameterError(f'parameter {name}={_short(value)} is out of range {allowed}'
                                 + (f': {doc}' if doc else ''))
        descriptor = parameter_descriptor(cls, config_field, name, default,
                                          read_only=config_field.name not in runtime)
        node.declare_parameter(name, value, descriptor, ignore_override=True)
        values[config_field.name] = value
    try:
        return config_from_dict(cls, values)
    except ValueError as error:
        raise ParameterError(parameter_message(error, prefix)) from error


def updated_config(config: C, parameters: Sequence[Parameter], prefix: str = '') -> C:
    """Return ``config`` with parameter updates applied, validated.

    :param config: the present config.
    :param parameters: parameters being set; those without ``prefix`` or that name no
        field of the config are ignored.
    :param prefix: this config's parameter prefix.
    :return: the new config (``config`` itself when no parameter is one of its fields).
    :raises ParameterError: when a value is of the wrong type or out of range, naming the
        parameter.
    """
    cls = type(config)
    names = {field.name for field in fields(cls)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for parameter in parameters:
        if not parameter.name.startswith(prefix):
            continue
        name = parameter.name[len(prefix):]
        if name in names:
            changes[name] = _coerce(cls, parameter.name, name, parameter.value,
                                    getattr(config, name))
    if not changes:
        return config
    try:
        return replace(config, **changes)  # type: ignore[type-var]
    except ValueError as error:
        raise ParameterError(parameter_message(error, prefix)) from error


def refuse_parameters(parameters: Sequence[Parameter]) -> SetParametersResult:
    """The answer to a parameter change whose check itself raised (the error is logged).

    The fallback of a guarded ``add_on_set_parameters_callback``: the change is refused
    with a reason, and the node keeps its parameters and its life.
    """
    names = ', '.join(parameter.name for parameter in parameters)
    return SetParametersResult(
        successful=False, reason=f'the node failed to check the change of {names}: see its log')


def _parameter_files(argv: Sequence[str]) -> list[str]:
    """The ``--params-file`` paths of a command line, after ``--ros-args``."""
    if '--ros-args' not in argv:
        return []
    ros_args = list(argv[list(argv).index('--ros-args') + 1:])
    return [path for flag, path in zip(ros_args, ros_args[1:], strict=False)
            if flag == '--params-file']


def unknown_parameters(node: Node, argv: Sequence[str]) -> str | None:
    """Parameters that a file gives this node by its own name but the node does not have.

    rcl hands a node every key of the sections that match it and rclpy silently ignores
    those it does not declare, so a misspelt key (``sead: 3``) ran with the default. Only
    the sections keyed by this node's own name are checked (``sim_node``, ``/sim_node``,
    ``/**/sim_node``, its fully qualified name): a ``/**`` section, like
    config/geometry.yaml, and ``-p`` overrides serve several nodes by design.

    :param node: the node, its parameters declared.
    :param argv: the command line (its ``--params-file`` arguments are read).
    :return: a sentence naming the unknown keys and the file, or None.
    """
    import yaml

    name = node.get_name()
    qualified = node.get_fully_qualified_name()
    own = {name, f'/{name}', f'/**/{name}', qualified, qualified.lstrip('/')}
    for path in _parameter_files(argv):
        document = yaml.safe_load(Path(path).read_text())
        for key in own & set(document if isinstance(document, dict) else ()):
            section = document[key]
            if not isinstance(section, dict) or not isinstance(
                    section.get('ros__parameters'), dict):
                continue
            unknown = sorted(parameter for parameter in _flat_keys(section['ros__parameters'])
                             if not node.has_parameter(parameter))
            if unknown:
                return (f'parameter file {path} gives {name} unknown parameter(s) '
                        f'{", ".join(unknown)}: a misspelt name? `ros2 param list` shows the '
                        "node's parameters")
    return None


def _flat_keys(mapping: dict[str, Any], prefix: str = '') -> list[str]:
    """Dotted names of a nested ``ros__parameters`` mapping (``pid: {kp: }`` -> ``pid.kp``)."""
    keys: list[str] = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            keys += _flat_keys(value, f'{prefix}{key}.')
        else:
            keys.append(f'{prefix}{key}')
    return keys


def parameter_file_problem(argv: Sequence[str]) -> str | None:
    """What is wrong with a ``--params-file`` of a command line, or None.

    rcl reports a missing or unparsable file with a traceback several lines long; this
    says it in a sentence that names the file.

    :param argv: the command line (only what follows ``--ros-args`` is read).
    :return: a sentence naming the file and the problem, or None when each file exists
        and is a YAML mapping.
    """
    import yaml

    for path in _parameter_files(argv):
        file = Path(path)
        if not file.is_file():
            return f'parameter file {path} does not exist'
        try:
            document = yaml.safe_load(file.read_text())
        except (OSError, UnicodeDecodeError) as error:
            return f'parameter file {path} cannot be read: {first_line(str(error))}'
        except yaml.YAMLError as error:
            mark = getattr(error, 'problem_mark', None)
            where = f' (line {mark.line + 1}, column {mark.column + 1})' if mark else ''
            what = getattr(error, 'problem', None) or first_line(str(error))
            return f'parameter file {path} is not valid YAML{where}: {what}'
        if not isinstance(document, dict):
            return (f'parameter file {path} must map node names to ros__parameters, '
                    f'got a {type(document).__name__}')
    return None


def first_line(text: str, limit: int = 300) -> str:
    """The first non-blank line of a message, cut to ``limit`` characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else ''
    return line if len(line) <= limit else f'{line[:limit]}...'
