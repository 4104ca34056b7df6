"""rclpy helpers shared by the node shells.

Parameters from config dataclasses, message conversions, diagnostics and a common
``main``.

Only the node shells import this module; the cores never import rclpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields, MISSING, replace
import math
import signal
import sys
import time
from typing import Any, TypeVar

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from reacher_common.config_tools import config_from_dict, field_docs
from reacher_common.images import rgb8_pixels

C = TypeVar('C')

JOINT_NAMES = ('shoulder', 'elbow')
"""Joint names in sensor_msgs/JointState, in the order of every joint array."""
WORLD_FRAME = 'world'
CAMERA_FRAME = 'camera'


class ParameterError(ValueError):
    """A ROS parameter is missing, of the wrong type, or out of range."""


def _coerce(cls: type, name: str, value: Any, default: Any) -> Any:
    """Convert a parameter value to the type of the field's default, or raise."""
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
    raise ParameterError(
        f'parameter {name!r} must be a {type(default).__name__}, got {value!r} '
        f'({field_docs(cls).get(name, "")})')


def declare_config(node: Node, cls: type[C], prefix: str = '',
                   base: C | None = None, **nested: Any) -> C:
    """Declare one ROS parameter per dataclass field and build the config from them.

    Each parameter is named ``prefix + field``, defaults to the field's default (or to
    ``base``'s value), and carries the field's docstring as its description. Integers
    given for float fields are accepted (YAML writes ``kp: 4``).

    :param node: the node that owns the parameters.
    :param cls: a frozen config dataclass whose ``__post_init__`` validates it.
    :param prefix: parameter name prefix, e.g. ``'pid.'``.
    :param base: values to use as defaults instead of the dataclass defaults.
    :param nested: values of the fields that hold a config dataclass (``geometry=...``),
        declared on their own (the shared geometry has no prefix); such fields are not
        declared here.
    :return: the validated config.
    :raises ParameterError: naming the parameter that is of the wrong type or out of range.
    """
    docs = field_docs(cls)
    values: dict[str, Any] = dict(nested)
    for field in fields(cls):  # type: ignore[arg-type]
        if field.name in nested:
            continue
        if base is not None:
            default = getattr(base, field.name)
        elif field.default is not MISSING:
            default = field.default
        else:
            default = field.default_factory()  # type: ignore[operator]
        descriptor = ParameterDescriptor(description=docs.get(field.name, ''),
                                         dynamic_typing=True)
        value = node.declare_parameter(prefix + field.name, default, descriptor).value
        values[field.name] = _coerce(cls, prefix + field.name, value, default)
    try:
        return config_from_dict(cls, values)
    except ValueError as error:
        raise ParameterError(_with_prefix(str(error), cls, prefix)) from error


def _with_prefix(message: str, cls: type, prefix: str) -> str:
    """Say 'parameter pid.kp' rather than 'PidConfig.kp' in messages for ROS users."""
    return message.replace(f'{cls.__name__}.', f'parameter {prefix}')


def updated_config(config: C, parameters: Sequence[Parameter], prefix: str = '') -> C:
    """Return ``config`` with parameter updates applied, validated.

    :param config: the present config.
    :param parameters: parameters being set; those without ``prefix`` are ignored.
    :param prefix: this config's parameter prefix.
    :return: the new config.
    :raises ParameterError: when a value is of the wrong type or out of range.
    """
    cls = type(config)
    names = {field.name for field in fields(cls)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for parameter in parameters:
        if not parameter.name.startswith(prefix):
            continue
        name = parameter.name[len(prefix):]
        if name in names:
            changes[name] = _coerce(cls, parameter.name, parameter.value, getattr(config, name))
    try:
        return replace(config, **changes)  # type: ignore[type-var]
    except ValueError as error:
        raise ParameterError(_with_prefix(str(error), cls, prefix)) from error


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

    A bad parameter or a missing file stops the start with one line that names it and a
    non-zero exit code (2), instead of a traceback.

    :param factory: builds the node (after ``rclpy.init``).
    :param args: command-line arguments, default ``sys.argv``.
    :return: process exit code.
    """
    rclpy.init(args=args)
    node: Node | None = None
    try:
        try:
            node = factory()
        except (ValueError, FileNotFoundError) as error:
            print(f'[FATAL] [{_program()}]: cannot start: {error}', file=sys.stderr, flush=True)
            return 2
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the clean-up
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _program() -> str:
    import os
    return os.path.basename(sys.argv[0]) if sys.argv else 'node'


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
