"""rclpy helpers shared by the node shells.

Message conversions, diagnostics, callback guards, rates and a common ``main``; the
parameters from config dataclasses are ``reacher_common.ros_params``.

Only the node shells import this module; the cores never import rclpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import functools
import gc
import math
import os
import signal
import sys
import time
from typing import Any, TypeVar

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped
import numpy as np
import numpy.typing as npt
import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, Header

from reacher_common.images import rgb8_pixels
from reacher_common.ros_params import first_line, parameter_file_problem, unknown_parameters
from reacher_common.scheduling import CpuLatencyRequest, scheduling_of, use_fifo_scheduling

C = TypeVar('C')

JOINT_NAMES = ('shoulder', 'elbow')
"""Joint names in sensor_msgs/JointState, in the order of every joint array."""
WORLD_FRAME = 'world'
CAMERA_FRAME = 'camera'


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


def stamp_to_nanoseconds(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (exact: a key to pair messages by)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


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
    """A diagnostic_msgs/DiagnosticStatus with ``values`` as key/value strings.

    Every status also carries ``scheduling``: the policy and priority of the thread that
    builds it, the node's executor (e.g. 'fifo 50', 'other 0'; see ``thread_priority``).
    """
    policy, priority = scheduling_of(0)
    values = {**values, 'scheduling': f'{policy} {priority}'}
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


EXECUTOR_ENV = 'REACHER_EXECUTOR'
"""Environment variable choosing the nodes' executor: 'events' (the default) or 'single'."""

EXECUTORS = ('events', 'single')
"""The values of :data:`EXECUTOR_ENV`."""


def make_executor(name: str | None = None) -> Executor:
    """The executor that spins a node: rclpy's EventsExecutor or its SingleThreadedExecutor.

    'events' (the default) is ``rclpy.experimental.EventsExecutor``: the middleware's
    events go to a C++ queue and the callbacks run from there, without the Python wait-set
    rebuild of every ``spin_once``. Measured here: a pub/sub round trip 0.83 against
    1.11 ms with the SingleThreadedExecutor; in ``reacher demo`` back to back (the machine
    loaded), perception -> policy p50 1.6-1.9 against 3.5 ms and the total latency p50
    5.6-6.3 against 8.1 ms; ``benchmarks/executor_probe.py``: the receive jitter of the
    sim's frames p50 0.07 against 1-2 ms (benchmarks/README.md, issue 14). It does not
    take callbacks with a ``MessageInfo`` argument (none of the nodes has one). 'single'
    keeps the SingleThreadedExecutor.

    :param name: 'events' or 'single'; None reads :data:`EXECUTOR_ENV` (default 'events').
    :return: a new executor.
    :raises ValueError: naming an unknown executor.
    """
    name = name if name is not None else (os.environ.get(EXECUTOR_ENV) or 'events')
    if name == 'events':
        from rclpy.experimental import EventsExecutor
        return EventsExecutor()
    if name == 'single':
        return SingleThreadedExecutor()
    raise ValueError(f'{EXECUTOR_ENV}={name!r} is unknown; use one of {list(EXECUTORS)}')


def run_node(factory: Callable[[], Node | list[Node]], args: list[str] | None = None) -> int:
    """``main()`` of every node: init, build, spin, shut down cleanly.

    ``factory`` may build several nodes, which then share the process and its executor
    (composition, as ``reacher.composed`` does); each is checked as a node of its own
    would be, and the process is scheduled once (``thread_priority`` and
    ``cpu_dma_latency_us`` are the process's: the nodes must agree on them).

    The node spins in :func:`make_executor`'s executor. Once it is built, the objects
    that exist then (modules, the model, the node) are moved out of the garbage
    collector's reach (``gc.freeze``): a full collection then walks only what callbacks
    allocate, instead of pausing a frame's callback for the whole heap (a precaution: its
    effect on the latency was not measured apart from the executor's).

    A bad parameter, a missing or unparsable parameter file, a key that a file gives
    this node by name but the node does not declare (:func:`unknown_parameters`), or a
    missing or corrupt checkpoint, or a backend's package missing from the install,
    stops the start with one line that names it and exit code 2, instead of a traceback.

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
        return _fatal(first_line(str(error)))
    nodes: list[Node] = []
    try:
        try:
            executor = make_executor()
            built = factory()
            nodes = built if isinstance(built, list) else [built]
        except (ValueError, OSError, ModuleNotFoundError) as error:
            # ModuleNotFoundError: a package missing from the install (onnxruntime); any
            # other ImportError is a bug in our code and keeps its traceback
            return _fatal(first_line(str(error)))
        for node in nodes:
            unknown = unknown_parameters(node, sys.argv if args is None else args)
            if unknown:
                return _fatal(unknown)
        mismatch = _scheduling_mismatch(nodes)
        if mismatch:
            return _fatal(mismatch)
        _schedule(nodes[0])  # process-wide: once, whatever the number of nodes
        gc.collect()
        gc.freeze()
        _spin(nodes, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the clean-up
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


_REQUESTS: list[CpuLatencyRequest] = []
_PROCESS_PARAMETERS = ('thread_priority', 'cpu_dma_latency_us')


def _scheduling_mismatch(nodes: list[Node]) -> str:
    """'' when the nodes of one process agree on its scheduling, else the line that says not."""
    for name in _PROCESS_PARAMETERS:
        values = {node.get_name(): node.get_parameter(name).value for node in nodes
                  if node.has_parameter(name)}
        if len(set(values.values())) > 1:
            return (f'parameter {name} differs between the nodes of one process ({values}): '
                    'it applies to the whole process, give them the same value')
    return ''


def _schedule(node: Node) -> None:
    """Apply the node's ``cpu_dma_latency_us`` and ``thread_priority`` where it declares them.

    Where the user may not (no ``rtprio`` limit), the node says so once and runs with the
    OS's default scheduler, as ros2_control's controller_manager does.
    """
    if node.has_parameter('cpu_dma_latency_us'):
        request = CpuLatencyRequest(int(node.get_parameter('cpu_dma_latency_us').value))
        if request.problem:
            node.get_logger().warning(
                f'cpu_dma_latency_us {request.latency_us}: refused ({request.problem}); the '
                'cores may sleep between frames, adding their wake-up to the latency. Run as '
                'root, or set cpu_dma_latency_us:=-1.')
        elif request.held:
            node.get_logger().info(f'CPU wake-up latency held at {request.latency_us} us')
        _REQUESTS.append(request)  # held until the process exits
    if not node.has_parameter('thread_priority'):
        return
    priority = int(node.get_parameter('thread_priority').value)
    threads, problem = use_fifo_scheduling(priority)
    if problem:
        node.get_logger().warning(
            f'thread_priority {priority}: SCHED_FIFO refused ({problem}); running with the '
            'default scheduler, so latency tails grow under load. Allow it with an rtprio '
            'limit (docs/ros.md, "Real-time scheduling") or set thread_priority:=0.')
    elif priority:
        node.get_logger().info(f'SCHED_FIFO priority {priority} on {threads} threads')


def _spin(nodes: list[Node], executor: Executor) -> None:
    """Spin until shutdown; ``spin_once`` with a timeout, not ``spin()``.

    The EventsExecutor's ``spin()`` did not return on Ctrl-C (SIGINT) here, and
    ``rclpy.spin``'s ``spin_once()`` without a timeout never ran its timers: both were
    tried; the loop below stops within a second of shutdown with either executor.
    """
    for node in nodes:
        executor.add_node(node)
    failures = 0
    try:
        while executor.context.ok():
            try:
                executor.spin_once(timeout_sec=1.0)
            except RuntimeError as error:
                # Raised inside the executor, before any callback of ours runs: once in
                # a clean-clone CI run, the EventsExecutor's spin_once raised pybind11's
                # "Unable to convert call argument '0' to Python object" in policy_node
                # mid-run and the node exited 1 (not reproduced in 3 reruns). One event is
                # lost (a tick or a message, which the loop's stale stop covers); the
                # node lives on and says so.
                failures += 1
                nodes[0].get_logger().error(
                    f'executor error #{failures}, event dropped: {first_line(str(error))}',
                    throttle_duration_sec=5.0)
    finally:
        for node in nodes:
            executor.remove_node(node)


def _fatal(message: str) -> int:
    print(f'[FATAL] [{_program()}]: cannot start: {message}', file=sys.stderr, flush=True)
    return 2


def _program() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv else 'node'


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
        self._reported: dict[str, int] = {}

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
        text = f'{type(error).__name__}: {first_line(str(error))}'
        self.last_error[name] = text
        now = time.monotonic()
        if now - self._logged.get(name, -math.inf) >= self.throttle_s():
            self._logged[name] = now
            self.node.get_logger().error(
                f'{name} failed ({self.counts[name]} so far), the node carries on: {text}')

    def total(self) -> int:
        """All failures counted so far."""
        return sum(self.counts.values())

    def failed_since_last_asked(self, name: str) -> bool:
        """Whether ``name`` failed since the previous call for it (a diagnostics period).

        :param name: the callback's name, as given to :meth:`guard` or :meth:`record`.
        :return: True if its count grew since the last call (or since start).
        """
        count = self.counts.get(name, 0)
        failed = count > self._reported.get(name, 0)
        self._reported[name] = count
        return failed


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
