"""What every bag command shares: topic names, opening and reading bags, and bad input.

Reads rosbag2 bags with the rosbags library (no rclpy): :func:`open_reader` and
:func:`select_connections` for the commands that walk a bag's messages, :func:`read_streams`
for the offline tools (``eval``, ``to-dataset``), which want the camera frames, commands,
ground truth and recorded estimates as arrays, and :func:`load_perception_config` for the arm
geometry they score against. :class:`BagError` is bad input (exit code 2).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_typestore, Stores
from rosbags.typesys.store import Typestore

from reacher_common.camera_calibration import CameraCalibration

FloatArray = npt.NDArray[np.float64]

DEFAULT_TOPICS: tuple[str, ...] = (
    'camera/image_raw', 'camera/camera_info', 'joint_states', 'goal',
    'perception/joint_states', 'perception/fingertip', 'perception/goal',
    'perception/estimate_status', 'perception/goal_pose', 'perception/fingertip_pose',
    'perception/latent', 'joint_commands', 'diagnostics', '/clock',
)
"""Every topic of the loop (the three nodes' topic contract); /clock when a node has one.
Relative names, as the nodes use them: they resolve under the loop's namespace
(:func:`resolve`); /clock is absolute, as rclpy's time source subscribes to it."""

IMAGE_TOPIC = 'camera/image_raw'
CAMERA_INFO_TOPIC = 'camera/camera_info'
COMMAND_TOPIC = 'joint_commands'
TRUTH_JOINTS_TOPIC = 'joint_states'
TRUTH_GOAL_TOPIC = 'goal'
ESTIMATE_TOPICS = ('perception/joint_states', 'perception/fingertip', 'perception/goal')
CLOCK_TOPIC = '/clock'


def resolve(topic: str, namespace: str = '') -> str:
    """A topic name as ROS resolves it in a node of ``namespace``.

    :param topic: relative ('camera/image_raw') or absolute ('/clock').
    :param namespace: '' or '/' for the root namespace, or e.g. '/arm1' ('arm1' too).
    :return: the absolute name ('/arm1/camera/image_raw', '/clock').
    :raises BagError: for a name ROS would refuse (empty, a space, '//', a trailing '/').
    """
    if (not topic or topic.endswith('/') or '//' in topic or ' ' in topic
            or topic.startswith('~')):
        raise BagError(f'invalid topic name {topic!r}: give a name such as '
                       "'camera/image_raw' (under --namespace) or '/camera/image_raw'")
    if topic.startswith('/'):
        return topic
    prefix = namespace.strip('/')
    return f'/{prefix}/{topic}' if prefix else f'/{topic}'


def namespace_hint(present: Sequence[str], topic: str) -> str:
    """' (try --namespace /arm1)' when the bag has ``topic`` under another namespace."""
    suffix = '/' + topic.lstrip('/')
    found = sorted(name[:-len(suffix)] for name in present
                   if name.endswith(suffix) and name != suffix)
    return f' (try --namespace {found[0]})' if found else ''


class BagError(ValueError):
    """Bad input to a bag command (exit code 2): the message says what to change."""


def typestore() -> Typestore:
    """The message types of ROS 2 Jazzy (rosbags' built-in store)."""
    return get_typestore(Stores.ROS2_JAZZY)


@contextlib.contextmanager
def open_reader(path: Path) -> Iterator[Reader]:
    """Open a rosbag2 bag for reading, and close it afterwards.

    :param path: bag directory (with metadata.yaml) or a single .mcap/.db3 file.
    :return: a context manager giving the opened :class:`rosbags.rosbag2.Reader`.
    :raises BagError: naming the path when it is missing or not a readable bag.
    """
    if not path.exists():
        raise BagError(f'bag {str(path)!r} does not exist')
    try:
        reader = Reader(path)
        reader.open()
    except Exception as error:  # noqa: BLE001 - rosbags raises several kinds; all mean this
        raise BagError(f'{str(path)!r} is not a readable rosbag2 bag: {error}') from error
    try:
        yield reader
    finally:
        reader.close()


def select_connections(reader: Reader, topics: Sequence[str]) -> list[Connection]:
    """The bag's connections on ``topics`` (all of them for an empty filter).

    :raises BagError: naming the requested topics the bag does not have, and listing
        the ones it has.
    """
    present = {connection.topic for connection in reader.connections}
    missing = [topic for topic in topics if topic not in present]
    if missing:
        raise BagError(f'topic(s) {", ".join(missing)} not in the bag; it has '
                       f'{", ".join(sorted(present)) or "no topics"}')
    wanted = set(topics) or present
    return [connection for connection in reader.connections if connection.topic in wanted]


def stamp_ns(msg: Any) -> int:
    """header.stamp of a message (rclpy's or rosbags'), nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def image_pixels(msg: Any) -> npt.NDArray[np.uint8]:
    """A sensor_msgs/Image (any encoding rosbags-image reads) as (H, W, 3) uint8 rgb8."""
    if msg.encoding == 'rgb8':
        # The common case is a reshape (rows may be padded to ``step`` bytes).
        from reacher_common.images import rgb8_pixels

        return np.ascontiguousarray(rgb8_pixels(msg))
    from rosbags.image import message_to_cvimage

    return np.asarray(message_to_cvimage(msg, 'rgb8'), dtype=np.uint8)


@dataclass
class BagStreams:
    """What the offline tools read from a bag, each list in receive (bag time) order.

    Times are nanoseconds: ``*_times`` the bag (receive) timestamps, ``image_stamps`` the
    images' header stamps.
    """

    image_times: list[int] = field(default_factory=list)
    image_stamps: list[int] = field(default_factory=list)
    images: list[npt.NDArray[np.uint8]] = field(default_factory=list)
    command_times: list[int] = field(default_factory=list)
    commands: list[FloatArray] = field(default_factory=list)
    camera_info_times: list[int] = field(default_factory=list)
    camera_info_stamps: list[int] = field(default_factory=list)
    calibrations: list[Any] = field(default_factory=list)
    """``reacher_common.camera_calibration.CameraCalibration`` of each well-formed
    CameraInfo (a malformed one is counted in ``dropped_camera_infos``)."""
    dropped_camera_infos: int = 0
    truth_joints: dict[int, FloatArray] = field(default_factory=dict)
    truth_velocities: dict[int, FloatArray] = field(default_factory=dict)
    truth_goal: dict[int, FloatArray] = field(default_factory=dict)
    recorded: dict[str, list[Any]] = field(default_factory=dict)

    def command_before(self, time_ns: int) -> FloatArray | None:
        """The last /joint_commands received strictly before ``time_ns``, or None."""
        index = int(np.searchsorted(np.asarray(self.command_times, dtype=np.int64),
                                    time_ns, side='left'))
        return self.commands[index - 1] if index > 0 else None


def read_streams(path: Path, need: Sequence[str] = (IMAGE_TOPIC,),
                 namespace: str = '') -> BagStreams:
    """Read the camera frames, commands, ground truth and recorded estimates of a bag.

    :param path: the bag.
    :param need: topics without which the caller cannot work (relative names).
    :param namespace: the loop's namespace in the bag ('' = the root: /camera/image_raw).
    :return: the streams, sorted by bag time; ``recorded`` keyed by relative name.
    :raises BagError: for a missing or unreadable bag, or one without a ``need`` topic.
    """
    store = typestore()
    streams = BagStreams()
    with open_reader(path) as reader:
        present = {connection.topic for connection in reader.connections}
        missing = [resolve(topic, namespace) for topic in need
                   if resolve(topic, namespace) not in present]
        if missing:
            raise BagError(f'bag {str(path)!r} has no {", ".join(missing)} (it has '
                           f'{", ".join(sorted(present)) or "no topics"})'
                           f'{namespace_hint(sorted(present), need[0])}')
        relative = {resolve(topic, namespace): topic
                    for topic in (IMAGE_TOPIC, CAMERA_INFO_TOPIC, COMMAND_TOPIC,
                                  TRUTH_JOINTS_TOPIC,
                                  TRUTH_GOAL_TOPIC, *ESTIMATE_TOPICS)}
        connections = [c for c in reader.connections if c.topic in relative]
        for connection, time_ns, raw in reader.messages(connections=connections):
            msg: Any = store.deserialize_cdr(raw, connection.msgtype)
            topic = relative[connection.topic]
            if topic == IMAGE_TOPIC:
                streams.image_times.append(time_ns)
                streams.image_stamps.append(stamp_ns(msg))
                streams.images.append(image_pixels(msg))
            elif topic == CAMERA_INFO_TOPIC:
                try:
                    calibration = CameraCalibration.from_message(msg)
                except ValueError:
                    streams.dropped_camera_infos += 1
                    continue
                streams.camera_info_times.append(time_ns)
                streams.camera_info_stamps.append(stamp_ns(msg))
                streams.calibrations.append(calibration)
            elif topic == COMMAND_TOPIC:
                values = np.asarray(msg.data, dtype=np.float64)
                if values.shape == (2,) and np.all(np.isfinite(values)):
                    streams.command_times.append(time_ns)
                    streams.commands.append(values)
            elif topic == TRUTH_JOINTS_TOPIC:
                streams.truth_joints[stamp_ns(msg)] = np.asarray(msg.position, np.float64)
                velocity = np.asarray(msg.velocity, np.float64)
                streams.truth_velocities[stamp_ns(msg)] = (
                    velocity if velocity.shape == (2,) else np.full(2, np.nan))
            elif topic == TRUTH_GOAL_TOPIC:
                streams.truth_goal[stamp_ns(msg)] = np.array([msg.point.x, msg.point.y])
            else:
                streams.recorded.setdefault(topic, []).append(msg)
    return streams


def load_perception_config(params_file: Path | None, **overrides: Any) -> Any:
    """A PerceptionConfig from the shared geometry and a perception_node parameter file.

    :param params_file: YAML in ``perception_node: ros__parameters:`` form; None for the
        package's config/perception.yaml. The package's config/geometry.yaml is read
        first, so the file may leave the geometry out or override it.
    :param overrides: field values that replace the file's.
    :return: the validated ``PerceptionConfig``.
    :raises BagError: when the file is missing or not a ROS parameter file.
    :raises ValueError: when a value is out of range (naming the field).
    """
    import yaml

    from reacher_common.config_tools import config_from_parameters, node_parameters
    from reacher_common.geometry import ArmGeometry
    from reacher_common.paths import config_file
    from reacher_perception.config import PerceptionConfig

    path = params_file if params_file is not None else config_file('perception.yaml')
    if not path.is_file():
        raise BagError(f'parameter file {str(path)!r} does not exist')
    try:
        documents = [yaml.safe_load(file.read_text()) or {}
                     for file in (config_file('geometry.yaml'), path)]
        values = node_parameters(documents, 'perception_node')
    except (ValueError, yaml.YAMLError) as error:
        raise BagError(f'{str(path)!r} is not a ROS parameter file: {error}') from error
    values.update(overrides)
    return config_from_parameters(PerceptionConfig, values, geometry=ArmGeometry)
