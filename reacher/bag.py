"""``reacher bag``: record, replay and evaluate rosbag2 bags without a ROS install.

Built on the `rosbags <https://gitlab.com/ternaris/rosbags>`_ library, which reads and
writes rosbag2 (sqlite3 and MCAP storage) in pure Python; rclpy is imported only by
``record`` and ``play``, which talk to live nodes. ``ros2 bag info`` / ``ros2 bag play`` on a
ROS 2 install read the bags this writes, and the other way round.

Subcommands (``reacher bag <command> --help`` lists every option)::

    reacher bag record OUTPUT [--topics T ...] [--duration S] [--storage mcap|sqlite3]
    reacher bag play BAG [--rate 1.0] [--clock] [--topics T ...] [--loop]
    reacher bag info BAG
    reacher bag eval BAG [--estimator classical] [--checkpoint PATH] [--out DIR]
    reacher bag to-dataset BAG OUT.npz [--sequence-length 9]

- ``record`` subscribes with serialized (``raw=True``) subscriptions and writes the CDR
  bytes unchanged, stamped with their receive time (system clock, ns), as ``ros2 bag
  record`` does. Message definitions and RIHS01 hashes come from the rosbags typestore
  ``Stores.ROS2_JAZZY``.
- ``play`` publishes those bytes again with their recorded relative timing (divided by
  ``--rate``); with ``--clock`` it also publishes ``rosgraph_msgs/Clock`` on /clock with the
  bag time, so nodes run with ``-p use_sim_time:=true`` live on the bag's clock.
- ``eval`` runs an estimator (``make_estimator``) offline on every /camera/image_raw frame,
  matches each estimate to the ground truth with the same ``header.stamp``, and reports the
  errors as a table, ``metrics.json`` and two PNG plots. The estimates recorded live on
  /perception/* (if any) are scored the same way, for comparison.
- ``to-dataset`` turns a bag into fixed-length sequences for training (format below).

Exit codes: 0 done, 1 failure while running, 2 bad input (a missing bag, an output that
exists, a topic that is not in the bag), with one line naming it.

Dataset format (``to-dataset``, a NumPy ``.npz``; N sequences of T frames)
---------------------------------------------------------------------------

================  ====================  =====================================================
key               shape, dtype          meaning
================  ====================  =====================================================
images            (N, T, H, W, 3) uint8 rgb8 camera frames /camera/image_raw
actions           (N, T, 2) float32     joint velocity command a_t divided by
                                        --max-joint-velocity (so in [-1, 1]; shoulder, elbow):
                                        the last /joint_commands received before frame t+1,
                                        i.e. the command in force from frame t to frame t+1
                                        (0 before the first command)
joint_positions   (N, T, 2) float32     ground-truth joint angles of frame t, rad, wrapped to
                                        [-pi, pi) (/joint_states with the frame's stamp)
joint_velocities  (N, T, 2) float32     the simulator's applied (clipped) joint velocities of
                                        the step that led to frame t, rad/s (/joint_states)
fingertip         (N, T, 2) float32     ground-truth fingertip, metres in ``world``, forward
                                        kinematics of ``joint_positions``
goal              (N, T, 2) float32     ground-truth goal centre, metres in ``world`` (/goal)
stamps            (N, T) float64        header.stamp of frame t, seconds
dt                () float32            median period between frames, seconds
link_lengths      (2,) float32          upper arm and forearm length used for ``fingertip``, m
policy            (N,) int8             -1 (a recording: no collector policy)
metadata          () str                JSON: geometry (image size, arena, links, goal size,
                                        dt, max_joint_velocity), as SLAC's shards
================  ====================  =====================================================

This is the SLAC dataset format (``reacher_perception.slac.data``, written with its
``write_shard``), so ``reacher perception train --data OUT.npz`` trains on a recording.

Frames are the bag's images in stamp order that have ground truth of the same stamp. A
sequence never spans a gap (a dropped frame: a stamp step over 1.5 ``dt``) nor, by default,
a goal change (the continuous task samples a new goal after each success), so within a
sequence x_{t+1} follows from x_t and a_t. Sequences are cut every ``--stride`` frames
(default T: no overlap). This is SLAC's layout (arXiv 1907.00953, sec. 6: sequences of
8 steps + 1 frame) with one action per frame; a loader that wants S actions for S + 1
frames drops ``actions[:, -1]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
import contextlib
from dataclasses import dataclass, field, fields
import importlib
import json
import math
import os
from pathlib import Path
import signal
import sys
import time
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores
from rosbags.typesys.store import Typestore
import tyro

FloatArray = npt.NDArray[np.float64]

DEFAULT_TOPICS: tuple[str, ...] = (
    '/camera/image_raw', '/camera/camera_info', '/joint_states', '/goal',
    '/perception/joint_states', '/perception/fingertip', '/perception/goal',
    '/perception/latent', '/joint_commands', '/diagnostics', '/clock',
)
"""Every topic of the loop (DESIGN.md's interface contract); /clock when a node has one."""

IMAGE_TOPIC = '/camera/image_raw'
COMMAND_TOPIC = '/joint_commands'
TRUTH_JOINTS_TOPIC = '/joint_states'
TRUTH_GOAL_TOPIC = '/goal'
ESTIMATE_TOPICS = ('/perception/joint_states', '/perception/fingertip', '/perception/goal')
CLOCK_TOPIC = '/clock'


class BagError(ValueError):
    """Bad input to a bag command (exit code 2): the message says what to change."""


def typestore() -> Typestore:
    """The message types of ROS 2 Jazzy (rosbags' built-in store)."""
    return get_typestore(Stores.ROS2_JAZZY)


# Arguments ---------------------------------------------------------------------------------


@dataclass
class RecordArgs:
    """Record the loop's topics from live nodes into a new rosbag2 bag (Ctrl-C to stop)."""

    output: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='OUTPUT')]
    """Directory of the new bag; must not exist."""
    topics: tuple[str, ...] = DEFAULT_TOPICS
    """Topics to record; each is subscribed once a publisher of it appears."""
    duration: float = 0.0
    """Seconds to record, counted from the start; 0 records until Ctrl-C."""
    storage: Literal['mcap', 'sqlite3'] = 'mcap'
    """Storage plugin: 'mcap' (rosbag2's default since Iron) or 'sqlite3'."""
    progress_period: float = 1.0
    """Seconds between two progress lines (message counts); 0 for none."""


@dataclass
class PlayArgs:
    """Publish a bag's messages again with their recorded timing."""

    bag: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='BAG')]
    """Bag directory (as written by 'reacher bag record' or 'ros2 bag record')."""
    rate: float = 1.0
    """Playback speed: 2.0 plays twice as fast; > 0."""
    clock: bool = False
    """Publish rosgraph_msgs/Clock on /clock with the bag time (for use_sim_time nodes)."""
    clock_hz: float = 100.0
    """Rate of /clock messages with --clock, Hz (wall clock); > 0."""
    topics: tuple[str, ...] = ()
    """Topics to play (default: all in the bag); each must be in the bag."""
    loop: bool = False
    """Start again from the beginning at the end, until Ctrl-C."""
    wait_for_subscribers: float = 0.0
    """Seconds to wait at most, before the first message, until every played topic has a
    matched subscriber (0: do not wait); playing on regardless after that."""
    delay: float = 1.0
    """Seconds between creating the publishers (and, with --wait-for-subscribers, their
    matching) and the first message, so that subscribers discover them first."""
    progress_period: float = 1.0
    """Seconds between two progress lines; 0 for none."""


@dataclass
class InfoArgs:
    """Print a bag's duration, topics, types and message counts."""

    bag: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='BAG')]
    """Bag directory."""


@dataclass
class EvalArgs:
    """Evaluate a perception estimator offline on a bag's camera frames (no ROS needed)."""

    bag: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='BAG')]
    """Bag with /camera/image_raw and the ground truth /joint_states and /goal."""
    estimator: str = 'classical'
    """Estimator name in reacher_perception.estimator.ESTIMATORS."""
    checkpoint: str = ''
    """Weights of a learned estimator ('' for the classical one)."""
    params_file: Path | None = None
    """perception_node YAML whose parameters (arm geometry) configure the estimator
    (default: the package's config/perception.yaml)."""
    out: Path = Path('bag_eval')
    """Directory for metrics.json, errors_over_time.png and estimate_vs_truth.png."""


@dataclass
class DatasetArgs:
    """Write a bag's frames, commands and ground truth as training sequences (.npz)."""

    bag: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='BAG')]
    """Bag with /camera/image_raw, /joint_states, /goal and /joint_commands."""
    out: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='OUT')]
    """Output .npz file (format in the module docstring of reacher/bag.py)."""
    sequence_length: int = 9
    """Frames per sequence, T (SLAC: 8 steps + 1); >= 2."""
    stride: int = 0
    """Frames between the starts of two sequences; 0 means sequence_length (no overlap)."""
    split_on_goal_change: bool = True
    """Never let a sequence span a goal change (a new goal is a jump no action explains)."""
    params_file: Path | None = None
    """YAML with the arm's link lengths, for the fingertip (default: config/perception.yaml)."""
    max_joint_velocity: float = 1.0
    """rad/s that an action of 1 stands for (config/sim.yaml); actions are stored divided
    by it, as in the SLAC dataset format."""


SUBCOMMANDS: dict[str, Callable[..., Any]] = {
    'record': RecordArgs, 'play': PlayArgs, 'info': InfoArgs, 'eval': EvalArgs,
    'to-dataset': DatasetArgs,
}


# Reading bags ------------------------------------------------------------------------------


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
    truth_joints: dict[int, FloatArray] = field(default_factory=dict)
    truth_velocities: dict[int, FloatArray] = field(default_factory=dict)
    truth_goal: dict[int, FloatArray] = field(default_factory=dict)
    recorded: dict[str, list[Any]] = field(default_factory=dict)

    def command_before(self, time_ns: int) -> FloatArray | None:
        """The last /joint_commands received strictly before ``time_ns``, or None."""
        index = int(np.searchsorted(np.asarray(self.command_times, dtype=np.int64),
                                    time_ns, side='left'))
        return self.commands[index - 1] if index > 0 else None


def read_streams(path: Path, need: Sequence[str] = (IMAGE_TOPIC,)) -> BagStreams:
    """Read the camera frames, commands, ground truth and recorded estimates of a bag.

    :param path: the bag.
    :param need: topics without which the caller cannot work.
    :return: the streams, sorted by bag time.
    :raises BagError: for a missing or unreadable bag, or one without a ``need`` topic.
    """
    store = typestore()
    streams = BagStreams()
    with open_reader(path) as reader:
        present = {connection.topic for connection in reader.connections}
        missing = [topic for topic in need if topic not in present]
        if missing:
            raise BagError(f'bag {str(path)!r} has no {", ".join(missing)} (it has '
                           f'{", ".join(sorted(present)) or "no topics"})')
        wanted = {IMAGE_TOPIC, COMMAND_TOPIC, TRUTH_JOINTS_TOPIC, TRUTH_GOAL_TOPIC,
                  *ESTIMATE_TOPICS}
        connections = [c for c in reader.connections if c.topic in wanted]
        for connection, time_ns, raw in reader.messages(connections=connections):
            msg: Any = store.deserialize_cdr(raw, connection.msgtype)
            topic = connection.topic
            if topic == IMAGE_TOPIC:
                streams.image_times.append(time_ns)
                streams.image_stamps.append(stamp_ns(msg))
                streams.images.append(image_pixels(msg))
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


# Errors against the ground truth -----------------------------------------------------------


@dataclass
class StampedEstimate:
    """One estimate with the stamp of its image (arrays in SI units, None if not given)."""

    stamp_ns: int
    joint_positions: FloatArray | None = None
    fingertip: FloatArray | None = None
    goal: FloatArray | None = None


def estimates_from_messages(joint_states: Iterable[Any] = (), fingertips: Iterable[Any] = (),
                            goals: Iterable[Any] = ()) -> list[StampedEstimate]:
    """Gather /perception/* messages (rclpy's or rosbags') into estimates by stamp.

    :param joint_states: sensor_msgs/JointState estimates.
    :param fingertips: geometry_msgs/PointStamped fingertip estimates.
    :param goals: geometry_msgs/PointStamped goal estimates.
    :return: one estimate per stamp, in stamp order.
    """
    by_stamp: dict[int, StampedEstimate] = {}

    def entry(msg: Any) -> StampedEstimate:
        key = stamp_ns(msg)
        return by_stamp.setdefault(key, StampedEstimate(key))

    for msg in joint_states:
        entry(msg).joint_positions = np.asarray(msg.position, dtype=np.float64)
    for msg in fingertips:
        entry(msg).fingertip = np.array([msg.point.x, msg.point.y])
    for msg in goals:
        entry(msg).goal = np.array([msg.point.x, msg.point.y])
    return [by_stamp[key] for key in sorted(by_stamp)]


@dataclass
class ErrorSeries:
    """Per-frame errors of estimates matched to the ground truth of the same stamp.

    M frames; arrays hold NaN where an estimate lacks that part.

    :param stamps: (M,) float64 seconds, header stamps.
    :param joint_error_deg: (M, 2) float64 absolute wrapped joint-angle error, degrees.
    :param fingertip_error_mm: (M,) float64 Euclidean fingertip error, millimetres.
    :param goal_error_mm: (M,) float64 Euclidean goal-centre error, millimetres.
    :param joint_estimate: (M, 2) float64 estimated joint angles, radians.
    :param joint_truth: (M, 2) float64 true joint angles, radians.
    """

    stamps: FloatArray
    joint_error_deg: FloatArray
    fingertip_error_mm: FloatArray
    goal_error_mm: FloatArray
    joint_estimate: FloatArray
    joint_truth: FloatArray

    def summary(self) -> dict[str, float]:
        """Mean (MAE) and 95th percentile of each error; ``frames`` matched."""
        def stat(values: FloatArray, function: Any) -> float:
            finite = values[np.isfinite(values)]
            return float(function(finite)) if finite.size else math.nan

        return {
            'frames': float(len(self.stamps)),
            'joint_mae_deg': stat(self.joint_error_deg.ravel(), np.mean),
            'shoulder_mae_deg': stat(self.joint_error_deg[:, 0], np.mean),
            'elbow_mae_deg': stat(self.joint_error_deg[:, 1], np.mean),
            'joint_p95_deg': stat(self.joint_error_deg.ravel(),
                                  lambda v: np.percentile(v, 95)),
            'fingertip_mean_mm': stat(self.fingertip_error_mm, np.mean),
            'fingertip_p95_mm': stat(self.fingertip_error_mm, lambda v: np.percentile(v, 95)),
            'goal_mean_mm': stat(self.goal_error_mm, np.mean),
            'goal_p95_mm': stat(self.goal_error_mm, lambda v: np.percentile(v, 95)),
        }


def match_errors(estimates: Sequence[StampedEstimate], truth_joints: dict[int, FloatArray],
                 truth_goal: dict[int, FloatArray],
                 link_lengths: tuple[float, float]) -> ErrorSeries:
    """Errors of ``estimates`` against the ground truth of the same stamp.

    Estimates whose stamp has no /joint_states are skipped. The true fingertip is the
    forward kinematics of the true joint angles.

    :param estimates: the estimates.
    :param truth_joints: stamp (ns) -> (2,) true joint angles, radians.
    :param truth_goal: stamp (ns) -> (2,) true goal centre, metres.
    :param link_lengths: upper arm and forearm lengths, metres.
    :return: the matched errors, in the estimates' order.
    """
    from reacher_common.kinematics import forward_kinematics, wrap_angle

    nan2 = np.full(2, np.nan)
    rows: list[tuple[float, FloatArray, float, float, FloatArray, FloatArray]] = []
    for estimate in estimates:
        joints = truth_joints.get(estimate.stamp_ns)
        if joints is None:
            continue
        _, fingertip = forward_kinematics(joints, *link_lengths)
        goal = truth_goal.get(estimate.stamp_ns, nan2)
        joint_estimate = (estimate.joint_positions if estimate.joint_positions is not None
                          else nan2)
        joint_error = np.degrees(np.abs(wrap_angle(joint_estimate - joints)))
        fingertip_error = (np.linalg.norm(estimate.fingertip - fingertip) * 1e3
                           if estimate.fingertip is not None else math.nan)
        goal_error = (np.linalg.norm(estimate.goal - goal) * 1e3
                      if estimate.goal is not None else math.nan)
        rows.append((estimate.stamp_ns * 1e-9, joint_error, float(fingertip_error),
                     float(goal_error), joint_estimate, joints))
    if not rows:
        empty = np.zeros((0, 2))
        return ErrorSeries(np.zeros(0), empty, np.zeros(0), np.zeros(0), empty, empty)
    columns = list(zip(*rows, strict=True))
    return ErrorSeries(
        stamps=np.asarray(columns[0], dtype=np.float64),
        joint_error_deg=np.stack(columns[1]),
        fingertip_error_mm=np.asarray(columns[2], dtype=np.float64),
        goal_error_mm=np.asarray(columns[3], dtype=np.float64),
        joint_estimate=np.stack(columns[4]),
        joint_truth=np.stack(columns[5]))


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


# eval --------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """What ``bag eval`` measured: error summaries per source and the offline series."""

    bag: str
    estimator: str
    frames: int
    inference_ms_p50: float
    arm_lost_frames: int
    goal_lost_frames: int
    metrics: dict[str, dict[str, float]]
    series: dict[str, ErrorSeries] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (NaN written as null)."""
        def finite(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {key: finite(item) for key, item in value.items()}
            return value

        data = {item.name: getattr(self, item.name) for item in fields(self)
                if item.name != 'series'}
        return finite(data)


def evaluate_bag(path: Path, estimator: str = 'classical', checkpoint: str = '',
                 params_file: Path | None = None) -> EvalResult:
    """Run an estimator over a bag's camera frames and score it against the ground truth.

    Frames are fed in receive order, each with the last /joint_commands received before
    it as ``previous_command``, as the perception node sees them.

    :param path: the bag.
    :param estimator: estimator name (``PerceptionConfig.estimator``).
    :param checkpoint: learned weights ('' for none).
    :param params_file: perception_node YAML for the geometry (None: the package's).
    :return: summaries for ``offline`` (this run) and ``recorded`` (the bag's /perception/*,
        when present), and the per-frame series.
    :raises BagError: for a missing bag or one without camera frames or ground truth.
    :raises ValueError: for an unknown estimator or a bad parameter.
    """
    from reacher_perception.estimator import make_estimator

    streams = read_streams(path, need=(IMAGE_TOPIC, TRUTH_JOINTS_TOPIC))
    if not streams.images:
        raise BagError(f'bag {str(path)!r} has no {IMAGE_TOPIC} messages')
    size = int(streams.images[0].shape[0])
    config = load_perception_config(params_file, estimator=estimator, checkpoint=checkpoint,
                                    image_size=size)
    model = make_estimator(config)
    lengths = (config.geometry.upper_arm_length_m, config.geometry.forearm_length_m)
    estimates, times = [], []
    arm_lost = goal_lost = 0
    for time_ns, stamp, pixels in zip(streams.image_times, streams.image_stamps,
                                      streams.images, strict=True):
        start = time.perf_counter()
        estimate = model.estimate(pixels, streams.command_before(time_ns))
        times.append((time.perf_counter() - start) * 1e3)
        arm_lost += not estimate.arm_visible
        goal_lost += not estimate.goal_visible
        estimates.append(StampedEstimate(stamp, estimate.joint_positions,
                                         estimate.fingertip, estimate.goal))
    series = {'offline': match_errors(estimates, streams.truth_joints, streams.truth_goal,
                                      lengths)}
    recorded = estimates_from_messages(*(streams.recorded.get(topic, [])
                                         for topic in ESTIMATE_TOPICS))
    if recorded:
        series['recorded'] = match_errors(recorded, streams.truth_joints, streams.truth_goal,
                                          lengths)
    return EvalResult(
        bag=str(path), estimator=estimator, frames=len(streams.images),
        inference_ms_p50=float(np.median(times)), arm_lost_frames=arm_lost,
        goal_lost_frames=goal_lost,
        metrics={name: item.summary() for name, item in series.items()}, series=series)


def format_table(result: EvalResult) -> str:
    """The eval summary as a fixed-width text table, one row per source."""
    header = ('source', 'frames', 'shoulder', 'elbow', 'joint MAE', 'fingertip',
              'fingertip p95', 'goal', 'goal p95')
    units = ('', '', 'MAE deg', 'MAE deg', 'deg', 'mean mm', 'mm', 'mean mm', 'mm')
    rows = [header, units]
    names = {'offline': f'offline {result.estimator}', 'recorded': 'recorded /perception'}
    for name, metric in result.metrics.items():
        rows.append((names.get(name, name), f'{metric["frames"]:.0f}',
                     f'{metric["shoulder_mae_deg"]:.3f}', f'{metric["elbow_mae_deg"]:.3f}',
                     f'{metric["joint_mae_deg"]:.3f}', f'{metric["fingertip_mean_mm"]:.2f}',
                     f'{metric["fingertip_p95_mm"]:.2f}', f'{metric["goal_mean_mm"]:.2f}',
                     f'{metric["goal_p95_mm"]:.2f}'))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ['  '.join(cell.rjust(width) if i else cell.ljust(width)
                       for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(2, '-' * len(lines[0]))
    return '\n'.join(lines)


def plot_eval(result: EvalResult, out: Path, dpi: int = 80) -> list[Path]:
    """Write errors_over_time.png and estimate_vs_truth.png for the offline estimates.

    :param result: the evaluation.
    :param out: directory (created).
    :param dpi: resolution; 80 keeps each PNG well under 100 KB.
    :return: the paths written.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    series = result.series['offline']
    seconds = series.stamps - (series.stamps[0] if len(series.stamps) else 0.0)
    figure, axes = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
    axes[0].plot(seconds, series.joint_error_deg[:, 0], label='shoulder', lw=1)
    axes[0].plot(seconds, series.joint_error_deg[:, 1], label='elbow', lw=1)
    axes[0].set_ylabel('joint error (deg)')
    axes[0].legend(loc='upper right', fontsize=8)
    axes[1].plot(seconds, series.fingertip_error_mm, label='fingertip', lw=1)
    axes[1].plot(seconds, series.goal_error_mm, label='goal', lw=1)
    axes[1].set_ylabel('position error (mm)')
    axes[1].set_xlabel('time since first frame (s)')
    axes[1].legend(loc='upper right', fontsize=8)
    figure.suptitle(f'{result.estimator} estimator, offline on {Path(result.bag).name}: '
                    f'joint MAE {result.metrics["offline"]["joint_mae_deg"]:.2f} deg',
                    fontsize=10)
    figure.tight_layout()
    over_time = out / 'errors_over_time.png'
    figure.savefig(over_time, dpi=dpi)
    plt.close(figure)

    figure, axes = plt.subplots(1, 2, figsize=(7, 3.5))
    for index, (axis, name) in enumerate(zip(axes, ('shoulder', 'elbow'), strict=True)):
        truth = np.degrees(series.joint_truth[:, index])
        axis.plot([-180, 180], [-180, 180], color='0.7', lw=1)
        axis.scatter(truth, np.degrees(series.joint_estimate[:, index]), s=4)
        axis.set_xlim(-180, 180)
        axis.set_ylim(-180, 180)
        axis.set_xlabel(f'true {name} (deg)')
        axis.set_ylabel(f'estimated {name} (deg)')
        axis.set_aspect('equal')
    figure.tight_layout()
    scatter = out / 'estimate_vs_truth.png'
    figure.savefig(scatter, dpi=dpi)
    plt.close(figure)
    return [over_time, scatter]


def run_eval(args: EvalArgs) -> int:
    """``bag eval``: table on stdout, metrics.json and the plots in ``args.out``."""
    result = evaluate_bag(args.bag, args.estimator, args.checkpoint, args.params_file)
    print(f'{result.bag}: {result.frames} frames, {result.estimator} estimator '
          f'({result.inference_ms_p50:.2f} ms/frame median); arm lost in '
          f'{result.arm_lost_frames}, goal lost in {result.goal_lost_frames} frames')
    print(format_table(result))
    args.out.mkdir(parents=True, exist_ok=True)
    metrics = args.out / 'metrics.json'
    metrics.write_text(json.dumps(result.to_json(), indent=2) + '\n')
    written = [metrics, *plot_eval(result, args.out)]
    print('wrote ' + ', '.join(str(path) for path in written))
    return 0


# to-dataset --------------------------------------------------------------------------------


def build_dataset(streams: BagStreams, link_lengths: tuple[float, float],
                  sequence_length: int = 9, stride: int = 0,
                  split_on_goal_change: bool = True) -> dict[str, npt.NDArray[Any]]:
    """Cut a bag's streams into the sequences of the format in the module docstring.

    :param streams: from :func:`read_streams`.
    :param link_lengths: upper arm and forearm, metres (for the fingertip).
    :param sequence_length: T, frames per sequence, >= 2.
    :param stride: frames between sequence starts; 0 means ``sequence_length``.
    :param split_on_goal_change: whether a sequence may not span a goal change.
    :return: the arrays of the .npz, keyed as documented.
    :raises BagError: when the bag has too few matched frames for one sequence.
    """
    from reacher_common.kinematics import forward_kinematics

    if sequence_length < 2:
        raise BagError(f'--sequence-length {sequence_length} must be >= 2')
    if stride < 0:
        raise BagError(f'--stride {stride} must be >= 0')
    stride = stride or sequence_length
    order = np.argsort(np.asarray(streams.image_stamps, dtype=np.int64), kind='stable')
    frames = [int(i) for i in order
              if streams.image_stamps[i] in streams.truth_joints
              and streams.image_stamps[i] in streams.truth_goal]
    stamps = np.asarray([streams.image_stamps[i] for i in frames], dtype=np.int64)
    if len(frames) < sequence_length:
        raise BagError(f'only {len(frames)} frames with ground truth, fewer than one '
                       f'sequence of {sequence_length}')
    steps = np.diff(stamps)
    dt_ns = float(np.median(steps)) if steps.size else math.nan
    goals = np.stack([streams.truth_goal[streams.image_stamps[i]] for i in frames])
    # A segment is a run of frames with no dropped frame (and the same goal) in between.
    breaks = steps > 1.5 * dt_ns
    if split_on_goal_change:
        breaks |= np.any(goals[1:] != goals[:-1], axis=1)
    bounds = [0, *(np.flatnonzero(breaks) + 1).tolist(), len(frames)]
    starts = [start for begin, end in zip(bounds[:-1], bounds[1:], strict=True)
              for start in range(begin, end - sequence_length + 1, stride)]
    if not starts:
        raise BagError(f'no run of {sequence_length} consecutive frames without a dropped '
                       'frame or a goal change; try a smaller --sequence-length')

    # Bag time of the frame after each (the command in force until then is a_t).
    image_times = np.asarray(streams.image_times, dtype=np.int64)
    all_order = np.argsort(np.asarray(streams.image_stamps, dtype=np.int64), kind='stable')
    position = {int(index): rank for rank, index in enumerate(all_order)}
    end_time = int(max(image_times.max(), max(streams.command_times, default=0))) + 1

    def action(index: int) -> FloatArray:
        rank = position[index]
        until = (int(image_times[all_order[rank + 1]]) if rank + 1 < len(all_order)
                 else end_time)
        command = streams.command_before(until)
        return np.zeros(2) if command is None else command

    nan2 = np.full(2, np.nan)
    windows = [frames[start:start + sequence_length] for start in starts]
    joint_positions = np.stack([[streams.truth_joints[streams.image_stamps[i]] for i in window]
                                for window in windows])
    _, fingertip = forward_kinematics(joint_positions, *link_lengths)
    return {
        'images': np.stack([[streams.images[i] for i in window] for window in windows]),
        'actions': np.stack([[action(i) for i in window] for window in windows]
                            ).astype(np.float32),
        'joint_positions': joint_positions.astype(np.float32),
        'joint_velocities': np.stack(
            [[streams.truth_velocities.get(streams.image_stamps[i], nan2) for i in window]
             for window in windows]).astype(np.float32),
        'fingertip': fingertip.astype(np.float32),
        'goal': np.stack([[streams.truth_goal[streams.image_stamps[i]] for i in window]
                          for window in windows]).astype(np.float32),
        'stamps': np.stack([[streams.image_stamps[i] * 1e-9 for i in window]
                            for window in windows]),
        'dt': np.asarray(dt_ns * 1e-9, dtype=np.float32),
        'link_lengths': np.asarray(link_lengths, dtype=np.float32),
    }


def run_to_dataset(args: DatasetArgs) -> int:
    """``bag to-dataset``: write the .npz and print its shapes."""
    if args.out.suffix != '.npz':
        raise BagError(f'output {str(args.out)!r} must end in .npz')
    config = load_perception_config(args.params_file)
    streams = read_streams(args.bag, need=(IMAGE_TOPIC, TRUTH_JOINTS_TOPIC, TRUTH_GOAL_TOPIC))
    if not streams.commands:
        print(f'warning: no {COMMAND_TOPIC} in the bag: actions are zero', file=sys.stderr)
    arrays = build_dataset(streams, config.geometry.link_lengths,
                           args.sequence_length, args.stride, args.split_on_goal_change)
    if not args.max_joint_velocity > 0:
        raise BagError(f'--max-joint-velocity {args.max_joint_velocity} must be > 0')
    # The SLAC dataset format (reacher_perception/slac/data.py), so that
    # `reacher perception train --data OUT.npz` trains on the recording.
    from reacher_perception.slac.data import SequenceGeometry, write_shard

    geometry = SequenceGeometry(
        image_size=int(arrays['images'].shape[2]), arena_size_m=config.geometry.arena_size_m,
        upper_arm_length_m=config.geometry.upper_arm_length_m,
        forearm_length_m=config.geometry.forearm_length_m,
        goal_size_m=config.geometry.goal_size_m,
        dt=round(float(arrays['dt']), 6), max_joint_velocity=args.max_joint_velocity)
    arrays['actions'] = (arrays['actions'] / args.max_joint_velocity).astype(np.float32)
    core = ('images', 'actions', 'joint_positions', 'fingertip', 'goal')
    write_shard(args.out, images=arrays['images'], actions=arrays['actions'],
                joint_positions=arrays['joint_positions'], fingertip=arrays['fingertip'],
                goal=arrays['goal'], geometry=geometry,
                extras={key: value for key, value in arrays.items() if key not in core})
    print(f'wrote {args.out}: ' + ', '.join(
        f'{key} {tuple(value.shape)} {value.dtype}' for key, value in arrays.items()))
    return 0


# info --------------------------------------------------------------------------------------


def run_info(args: InfoArgs) -> int:
    """``bag info``: duration, storage and per-topic type and count."""
    with open_reader(args.bag) as reader:
        print(f'bag {args.bag}: {reader.duration * 1e-9:.2f} s, '
              f'{reader.message_count} messages')
        width = max((len(topic) for topic in reader.topics), default=0)
        for topic, info in sorted(reader.topics.items()):
            print(f'  {topic:<{width}}  {info.msgcount:>7}  {info.msgtype}')
    return 0


# record and play (rclpy) -------------------------------------------------------------------


class _StopFlag:
    """Set by SIGINT / SIGTERM, so that loops end cleanly and the bag is closed."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: Any) -> None:
        self.stop = True

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def message_class(msgtype: str) -> type:
    """The rclpy message class of a type name, e.g. 'sensor_msgs/msg/Image'.

    :raises BagError: when the type's Python package is not installed.
    """
    package, _, name = msgtype.rpartition('/')
    try:
        module = importlib.import_module(package.replace('/', '.'))
        cls: type = getattr(module, name)
    except (ImportError, AttributeError) as error:
        raise BagError(f'message type {msgtype} is not installed ({error})') from error
    return cls


def _init_rclpy() -> Any:
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    # Our own SIGINT handling closes the bag; rclpy's would shut the context mid-write.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    return rclpy


def _qos_from_publishers(infos: Sequence[Any]) -> Any:
    """A subscription QoS that matches every publisher (as rosbag2's recorder adapts)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    reliable = all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                   for info in infos)
    latched = bool(infos) and all(
        info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for info in infos)
    return QoSProfile(
        depth=100,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                    else DurabilityPolicy.VOLATILE))


def _bag_qos(qos: Any) -> Any:
    """Convert an rclpy QoSProfile to a rosbags Qos (the bag's offered_qos_profiles)."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, int(qos.depth), QosReliability(int(qos.reliability)),
               QosDurability(int(qos.durability)), zero, zero, QosLiveliness.AUTOMATIC,
               zero, False)


def _check_topic_names(topics: Sequence[str]) -> None:
    bad = [topic for topic in topics
           if not topic.startswith('/') or ' ' in topic or topic.endswith('/')]
    if bad:
        raise BagError(f'invalid topic name(s) {", ".join(map(repr, bad))}: give absolute '
                       "names such as '/camera/image_raw'")


def run_record(args: RecordArgs) -> int:
    """``bag record``: subscribe raw, write CDR bytes with receive time, close on exit."""
    plugins = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
    if args.storage not in plugins:
        raise BagError(f"--storage {args.storage!r} is unknown: use 'mcap' or 'sqlite3'")
    if args.output.exists():
        raise BagError(f'output {str(args.output)!r} exists already: choose a new path')
    if args.duration < 0:
        raise BagError(f'--duration {args.duration} must be >= 0 seconds')
    if not args.topics:
        raise BagError('--topics is empty: name at least one topic')
    _check_topic_names(args.topics)
    store = typestore()
    rclpy = _init_rclpy()
    from rclpy.node import Node

    node = Node('reacher_bag_recorder')
    writer = Writer(args.output, version=Writer.VERSION_LATEST,
                    storage_plugin=plugins[args.storage])
    writer.open()
    counts: dict[str, int] = dict.fromkeys(args.topics, 0)
    subscribed: dict[str, Any] = {}
    skipped: set[str] = set()
    print(f'[bag record] writing {args.output} ({args.storage}); waiting for '
          f'{len(args.topics)} topics (Ctrl-C to stop)', flush=True)

    def subscribe_new() -> None:
        for topic, types in node.get_topic_names_and_types():
            if topic not in counts or topic in subscribed or topic in skipped:
                continue
            msgtype = types[0]
            if msgtype not in store.fielddefs:
                print(f'[bag record] skipping {topic}: {msgtype} is not in the '
                      'ROS2_JAZZY typestore', file=sys.stderr, flush=True)
                skipped.add(topic)
                continue
            try:
                cls = message_class(msgtype)
            except BagError as error:
                print(f'[bag record] skipping {topic}: {error}', file=sys.stderr, flush=True)
                skipped.add(topic)
                continue
            qos = _qos_from_publishers(node.get_publishers_info_by_topic(topic))
            connection = writer.add_connection(topic, msgtype, typestore=store,
                                               offered_qos_profiles=[_bag_qos(qos)])

            def callback(data: bytes, topic: str = topic, connection: Any = connection) -> None:
                writer.write(connection, time.time_ns(), data)
                counts[topic] += 1

            subscribed[topic] = node.create_subscription(cls, topic, callback, qos, raw=True)

    start = time.monotonic()
    next_discovery, next_progress = start, start + args.progress_period
    try:
        with _StopFlag() as flag:
            while not flag.stop:
                now = time.monotonic()
                if args.duration and now - start >= args.duration:
                    break
                if now >= next_discovery:
                    subscribe_new()
                    next_discovery = now + 0.5
                if args.progress_period and now >= next_progress:
                    _print_counts(now - start, counts)
                    next_progress = now + args.progress_period
                rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        writer.close()
    _print_counts(time.monotonic() - start, counts)
    unseen = [topic for topic, count in counts.items() if count == 0]
    if unseen:
        print(f'[bag record] no messages on {", ".join(unseen)}', flush=True)
    print(f'[bag record] closed {args.output}: {sum(counts.values())} messages', flush=True)
    return 0


def _print_counts(elapsed: float, counts: dict[str, int]) -> None:
    seen = ', '.join(f'{topic} {count}' for topic, count in counts.items() if count)
    print(f'[bag record] {elapsed:6.1f} s  {sum(counts.values())} messages'
          f'{": " + seen if seen else ""}', flush=True)


@dataclass
class _Player:
    """The bag's messages in time order, once or looped, with the pacing state."""

    reader: Reader
    connections: list[Connection]

    def messages(self, loop: bool, stop: _StopFlag
                 ) -> Iterator[tuple[bool, int, Connection, bytes]]:
        """(first of a pass, bag time ns, connection, raw CDR) in time order; looped if asked."""
        while not stop.stop:
            first = True
            for connection, time_ns, raw in self.reader.messages(connections=self.connections):
                yield first, time_ns, connection, bytes(raw)
                first = False
            if not loop:
                return


def run_play(args: PlayArgs) -> int:
    """``bag play``: publish raw bytes on schedule, and /clock with the bag time."""
    if not args.rate > 0 or not math.isfinite(args.rate):
        raise BagError(f'--rate {args.rate} must be a finite number > 0')
    if not args.clock_hz > 0:
        raise BagError(f'--clock-hz {args.clock_hz} must be > 0')
    with open_reader(args.bag) as reader:
        connections = select_connections(reader, args.topics)
        if args.clock:
            connections = [c for c in connections if c.topic != CLOCK_TOPIC]
        if not connections:
            raise BagError(f'nothing to play in {str(args.bag)!r}')
        classes = {c.id: message_class(c.msgtype) for c in connections}
        return _play(args, reader, connections, classes)


def _play(args: PlayArgs, reader: Reader, connections: list[Connection],
          classes: dict[int, type]) -> int:
    rclpy = _init_rclpy()
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.time import Time
    from rosbags.interfaces import QosDurability, QosReliability
    from rosgraph_msgs.msg import Clock

    node = Node('reacher_bag_player')
    publishers: dict[int, Any] = {}
    for connection in connections:
        offered = getattr(connection.ext, 'offered_qos_profiles', [])
        best_effort = any(q.reliability == QosReliability.BEST_EFFORT for q in offered)
        latched = bool(offered) and all(
            q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
        qos = QoSProfile(
            depth=10,
            reliability=(ReliabilityPolicy.BEST_EFFORT if best_effort
                         else ReliabilityPolicy.RELIABLE),
            durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                        else DurabilityPolicy.VOLATILE))
        publishers[connection.id] = node.create_publisher(classes[connection.id],
                                                          connection.topic, qos)
    clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, 10) if args.clock else None
    total = sum(c.msgcount for c in connections)
    print(f'[bag play] {args.bag}: {total} messages on '
          f'{", ".join(sorted({c.topic for c in connections}))} at rate {args.rate:g}'
          f'{", publishing /clock" if args.clock else ""}', flush=True)
    published = 0
    player = _Player(reader, connections)
    try:
        with _StopFlag() as flag:
            deadline = time.monotonic() + args.wait_for_subscribers
            unmatched = list(publishers.values())
            while not flag.stop and unmatched and time.monotonic() < deadline:
                unmatched = [pub for pub in unmatched if pub.get_subscription_count() == 0]
                time.sleep(0.05)
            if args.wait_for_subscribers and unmatched:
                print('[bag play] no subscriber yet on '
                      f'{", ".join(pub.topic_name for pub in unmatched)}; playing anyway',
                      flush=True)
            deadline = time.monotonic() + args.delay
            while not flag.stop and time.monotonic() < deadline:
                time.sleep(0.02)
            bag_start: int | None = None
            wall_start = time.monotonic()
            clock_period = 1.0 / args.clock_hz
            next_clock = next_progress = wall_start

            def bag_now() -> int:
                elapsed = (time.monotonic() - wall_start) * args.rate
                return (bag_start or 0) + int(elapsed * 1e9)

            def wait_until(due: float) -> None:
                nonlocal next_clock
                while not flag.stop:
                    now = time.monotonic()
                    if clock_pub is not None and now >= next_clock:
                        clock_pub.publish(Clock(clock=Time(nanoseconds=bag_now()).to_msg()))
                        next_clock += clock_period
                        if next_clock < now:  # fell behind: do not burst
                            next_clock = now + clock_period
                    if now >= due:
                        return
                    upcoming = min(due, next_clock) if clock_pub is not None else due
                    time.sleep(max(0.0, min(upcoming - now, 0.05)))

            for first, time_ns, connection, raw in player.messages(args.loop, flag):
                if first or bag_start is None:
                    # The first message of a pass (--loop starts again): restart the schedule.
                    bag_start, wall_start = time_ns, time.monotonic()
                    next_clock = wall_start
                wait_until(wall_start + (time_ns - bag_start) * 1e-9 / args.rate)
                if flag.stop:
                    break
                publishers[connection.id].publish(raw)
                published += 1
                if args.progress_period and time.monotonic() >= next_progress:
                    print(f'[bag play] {published}/{total} messages, bag time '
                          f'+{(time_ns - bag_start) * 1e-9:.1f} s', flush=True)
                    next_progress = time.monotonic() + args.progress_period
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(f'[bag play] done: {published} messages published', flush=True)
    return 0


# CLI ---------------------------------------------------------------------------------------


RUNNERS: dict[type, Callable[[Any], int]] = {
    RecordArgs: run_record, PlayArgs: run_play, InfoArgs: run_info, EvalArgs: run_eval,
    DatasetArgs: run_to_dataset}


def bag_main(argv: list[str]) -> int:
    """``reacher bag <record|play|info|eval|to-dataset> ...`` entry point.

    :param argv: the arguments after ``bag``.
    :return: exit code: 0 done, 1 failed while running, 2 bad input.
    """
    try:
        args = tyro.extras.subcommand_cli_from_dict(
            SUBCOMMANDS, args=argv, prog='reacher bag',
            description='Record, play and evaluate rosbag2 bags of the reacher loop '
                        '(rosbags library, no ROS install needed).')
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    try:
        return RUNNERS[type(args)](args)
    except BagError as error:
        print(f'reacher bag: {error}', file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as error:
        print(f'reacher bag: {error}', file=sys.stderr)
        return 2

