"""rclpy helpers shared by the node shells.

Parameters from config dataclasses, message conversions, diagnostics and a common
``main``.

Only the node shells import this module; the cores never import rclpy.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import Field, fields, MISSING, replace
import functools
import math
import os
from pathlib import Path
import signal
import sys
import time
from typing import Any, TypeVar

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
import numpy as np
import numpy.typing as npt
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, Header

from reacher_common.config_tools import config_from_dict, field_docs, field_range, FieldError
from reacher_common.images import rgb8_pixels

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


MAX_COMMAND_BYTES = 1024
"""The largest serialized /joint_commands message that is read: two float64 take 32
bytes of CDR, the rest leaves room for a small layout."""


def command_from_serialized(serialized: bytes) -> npt.NDArray[np.float64]:
    """A joint-velocity command from its serialized std_msgs/Float64MultiArray.

    Subscribing with ``raw=True`` and calling this checks a message's size before
    anything converts its payload, so a flood of huge commands costs a subscriber little.

    :param serialized: the CDR bytes of the message.
    :return: (2,) float64 rad/s, finite.
    :raises ValueError: saying what was received in sizes, never values (over
        ``MAX_COMMAND_BYTES``, not a Float64MultiArray, another length, non-finite).
    """
    if len(serialized) > MAX_COMMAND_BYTES:
        raise ValueError(f'a message of {len(serialized)} bytes')
    try:
        msg = deserialize_message(serialized, Float64MultiArray)
    except Exception:  # noqa: BLE001 -- any malformed CDR is one bad command
        raise ValueError(f'{len(serialized)} bytes that are no Float64MultiArray') from None
    if len(msg.data) != 2:
        raise ValueError(f'{len(msg.data)} values')
    values = np.asarray(msg.data, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError('non-finite values')
    return values


def stamp_to_seconds(stamp: Time) -> float:
    """builtin_interfaces/Time -> seconds (float)."""
    return stamp.sec + stamp.nanosec * 1e-9


def image_to_array(msg: Image, size: int) -> Any:
    """Check an rgb8 sensor_msgs/Image and view its pixels as a numpy array.

    :param msg: the image message.
    :param size: the expected width = height, pixels.
    :return: (size, size, 3) uint8 array (a view when rows are unpadded).
    :raises ValueError: for another encoding, size, or a data length that does not match.
    """
    if msg.encoding != 'rgb8':
        raise ValueError(f"image encoding {msg.encoding!r} is not supported: publish 'rgb8'")
    if msg.width != size or msg.height != size:
        raise ValueError(f'image is {msg.width}x{msg.height}, expected {size}x{size} '
                         '(set the image_size parameter to match the camera)')
    return rgb8_pixels(msg)


def array_to_image(pixels: Any, header: Header) -> Image:
    """(H, W, 3) uint8 array -> rgb8 sensor_msgs/Image."""
    height, width = pixels.shape[:2]
    return Image(header=header, height=height, width=width, encoding='rgb8',
                 is_bigendian=0, step=3 * width, data=pixels.tobytes())


def point_stamped(xy: Sequence[float] | Any, header: Header) -> PointStamped:
    """A (x, y) in the arena plane, metres -> geometry_msgs/PointStamped with z = 0."""
    msg = PointStamped(header=header)
    msg.point.x, msg.point.y, msg.point.z = float(xy[0]), float(xy[1]), 0.0
    return msg


def diagnostic_status(node: Node, name: str, values: dict[str, Any],
                      level: bytes = DiagnosticStatus.OK, message: str = 'ok'
                      ) -> DiagnosticStatus:
    """A diagnostic_msgs/DiagnosticStatus with ``values`` as key/value strings."""
    return DiagnosticStatus(
        level=level, name=f'{node.get_name()}: {name}', message=message,
        hardware_id='reacher',
        values=[KeyValue(key=key, value=_format(value)) for key, value in values.items()])


def diagnostic_array(node: Node, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    """Wrap statuses in a stamped diagnostic_msgs/DiagnosticArray."""
    array = DiagnosticArray(status=statuses)
    array.header.stamp = node.get_clock().now().to_msg()
    return array


def _format(value: Any) -> str:
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:.6g}'
    return str(value)


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """``main()`` of every node: init, build, spin, shut down cleanly.

    A bad parameter, a missing or unparsable parameter file, a key that a file gives
    this node by name but the node does not declare (:func:`unknown_parameters`), or a
    missing or corrupt checkpoint stops the start with one line that names it and exit
    code 2, instead of a traceback.

    :param factory: builds the node (after ``rclpy.init``).
    :param args: command-line arguments, default ``sys.argv``.
    :return: process exit code.
    """
    problem = parameter_file_problem(sys.argv if args is None else args)
    if problem:
        return _fatal(problem)
    try:
        rclpy.init(args=args)
    except Exception as error:  # noqa: BLE001 -- rcl's own argument errors, one line
        return _fatal(_first_line(str(error)))
    node: Node | None = None
    try:
        try:
            node = factory()
        except (ValueError, OSError) as error:
            return _fatal(_first_line(str(error)))
        unknown = unknown_parameters(node, sys.argv if args is None else args)
        if unknown:
            return _fatal(unknown)
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the clean-up
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _fatal(message: str) -> int:
    print(f'[FATAL] [{_program()}]: cannot start: {message}', file=sys.stderr, flush=True)
    return 2


def _program() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv else 'node'


def _first_line(text: str, limit: int = 300) -> str:
    """The first non-blank line of a message, cut to ``limit`` characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else ''
    return line if len(line) <= limit else f'{line[:limit]}...'


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
            return f'parameter file {path} cannot be read: {_first_line(str(error))}'
        except yaml.YAMLError as error:
            mark = getattr(error, 'problem_mark', None)
            where = f' (line {mark.line + 1}, column {mark.column + 1})' if mark else ''
            what = getattr(error, 'problem', None) or _first_line(str(error))
            return f'parameter file {path} is not valid YAML{where}: {what}'
        if not isinstance(document, dict):
            return (f'parameter file {path} must map node names to ros__parameters, '
                    f'got a {type(document).__name__}')
    return None


class CallbackErrors:
    """Keeps a node alive through exceptions in its callbacks: logged, counted, survived.

    rclpy lets an exception in a callback end ``spin`` and with it the node. Every
    callback of the node shells is wrapped by :meth:`guard`: an exception is counted under
    the callback's name (for /diagnostics), logged in one short line at most once per
    ``throttle_s()`` per callback, and answered by the callback's ``fallback`` (e.g.
    commanding zero).

    :param node: the node whose logger reports the errors.
    :param throttle_s: returns the least time between two log lines of one callback, s.
    """

    def __init__(self, node: Node, throttle_s: Callable[[], float]) -> None:
        self.node = node
        self.throttle_s = throttle_s
        self.counts: dict[str, int] = {}
        self.last_error: dict[str, str] = {}
        self._logged: dict[str, float] = {}

    def guard(self, callback: Callable[..., Any], name: str,
              fallback: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """``callback``, catching what it raises.

        :param callback: a subscription, timer, service or parameter callback.
        :param name: what it does, for the log and the counts (``'control step'``).
        :param fallback: called with the same arguments after a failure; its result is
            returned (a service's response, a parameter result); None returns None.
        :return: the guarded callback.
        """
        @functools.wraps(callback)
        def guarded(*args: Any) -> Any:
            try:
                return callback(*args)
            except Exception as error:  # noqa: BLE001 -- any fault: count it, live on
                self.record(name, error)
            if fallback is None:
                return None
            try:
                return fallback(*args)
            except Exception as error:  # noqa: BLE001 -- nor may the fallback end the node
                self.record(f'{name} fallback', error)
                return None

        return guarded

    def record(self, name: str, error: BaseException) -> None:
        """Count one failure of ``name`` and log it unless it was logged recently."""
        self.counts[name] = self.counts.get(name, 0) + 1
        text = f'{type(error).__name__}: {_first_line(str(error))}'
        self.last_error[name] = text
        now = time.monotonic()
        if now - self._logged.get(name, -math.inf) >= self.throttle_s():
            self._logged[name] = now
            self.node.get_logger().error(
                f'{name} failed ({self.counts[name]} so far), the node carries on: {text}')

    def total(self) -> int:
        """All failures counted so far."""
        return sum(self.counts.values())


class RateMeter:
    """Counts events to report an achieved rate and period statistics (for /diagnostics).

    :param window: how many recent periods to keep.
    """

    def __init__(self, window: int = 1000) -> None:
        self.window = window
        self.count = 0
        self._last: float | None = None
        self._periods: list[float] = []
        self._start = time.monotonic()

    def tick(self, now: float | None = None) -> float | None:
        """Record one event; return the period since the previous one, seconds."""
        now = time.monotonic() if now is None else now
        period = None if self._last is None else now - self._last
        if period is not None:
            self._periods.append(period)
            if len(self._periods) > self.window:
                del self._periods[:len(self._periods) - self.window]
        self._last = now
        self.count += 1
        return period

    def rate_hz(self) -> float:
        """Mean rate over the window, Hz (nan before two events)."""
        if not self._periods:
            return math.nan
        return len(self._periods) / sum(self._periods)

    def periods(self) -> list[float]:
        """The recent periods, seconds."""
        return list(self._periods)
