"""``reacher bag eval``: score a perception estimator offline on a bag's camera frames.

Runs an estimator (``make_estimator``) on every /camera/image_raw frame, matches each
estimate to the ground truth with the same ``header.stamp``, and reports the errors as a
table, ``metrics.json`` and two PNG plots. The estimates recorded live on /perception/* (if
any) are scored the same way, for comparison. Needs no ROS: the bag is read with rosbags.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
import json
import math
from pathlib import Path
import time
from typing import Annotated, Any

import numpy as np
import tyro

from reacher.bag.io import (
    BagError,
    ESTIMATE_TOPICS,
    FloatArray,
    IMAGE_TOPIC,
    load_perception_config,
    read_streams,
    stamp_ns,
    TRUTH_JOINTS_TOPIC,
)
from reacher_common.camera_calibration import StampedRectifier
from reacher_perception.config import PerceptionConfig


@dataclass
class BagEvalArgs:
    """Evaluate a perception estimator offline on a bag's camera frames (no ROS needed)."""

    bag: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='BAG')]
    """Bag with /camera/image_raw and the ground truth /joint_states and /goal."""
    estimator: str = PerceptionConfig.estimator
    """Estimator name in reacher_perception.estimator.ESTIMATORS ('slac', perception_node's
    default, or 'classical')."""
    checkpoint: str = ''
    """Weights of a learned estimator ('' for the classical one)."""
    params_file: Path | None = None
    """perception_node YAML whose parameters (arm geometry) configure the estimator
    (default: the package's config/perception.yaml)."""
    namespace: str = ''
    """Namespace of the recorded loop (e.g. /arm1): the topics are read under it."""
    out: Path = Path('bag_eval')
    """Directory for metrics.json, errors_over_time.png and estimate_vs_truth.png."""


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


@dataclass
class BagEvalResult:
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


def evaluate_bag(path: Path, estimator: str = PerceptionConfig.estimator, checkpoint: str = '',
                 params_file: Path | None = None, namespace: str = '') -> BagEvalResult:
    """Run an estimator over a bag's camera frames and score it against the ground truth.

    Frames are fed in receive order, each with the last /joint_commands received before
    it as ``previous_command`` and (with the parameter file's ``rectify``, the default)
    rectified with the /camera/camera_info of its stamp, as the perception node sees them.

    :param path: the bag.
    :param estimator: estimator name (``PerceptionConfig.estimator``).
    :param checkpoint: learned weights ('' for none).
    :param params_file: perception_node YAML for the geometry (None: the package's).
    :param namespace: the recorded loop's namespace ('' = the root one).
    :return: summaries for ``offline`` (this run) and ``recorded`` (the bag's /perception/*,
        when present), and the per-frame series.
    :raises BagError: for a missing bag or one without camera frames or ground truth.
    :raises ValueError: for an unknown estimator or a bad parameter.
    """
    from reacher_perception.estimator import make_estimator

    streams = read_streams(path, need=(IMAGE_TOPIC, TRUTH_JOINTS_TOPIC), namespace=namespace)
    if not streams.images:
        raise BagError(f'bag {str(path)!r} has no {IMAGE_TOPIC} messages')
    size = int(streams.images[0].shape[0])
    config = load_perception_config(params_file, estimator=estimator, checkpoint=checkpoint,
                                    image_size=size)
    model = make_estimator(config)
    lengths = config.geometry.link_lengths
    estimates, times = [], []
    arm_lost = goal_lost = 0
    # As perception_node: each frame rectified with the CameraInfo of its stamp, among
    # those received before it.
    rectifier = StampedRectifier()
    infos = iter(zip(streams.camera_info_times, streams.camera_info_stamps,
                     streams.calibrations, strict=True))
    pending = next(infos, None)
    for time_ns, stamp, pixels in zip(streams.image_times, streams.image_stamps,
                                      streams.images, strict=True):
        while pending is not None and pending[0] <= time_ns:
            rectifier.add(pending[1], pending[2])
            pending = next(infos, None)
        start = time.perf_counter()
        if config.rectify:
            pixels = rectifier(stamp, pixels)
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
    return BagEvalResult(
        bag=str(path), estimator=estimator, frames=len(streams.images),
        inference_ms_p50=float(np.median(times)), arm_lost_frames=arm_lost,
        goal_lost_frames=goal_lost,
        metrics={name: item.summary() for name, item in series.items()}, series=series)


def format_table(result: BagEvalResult) -> str:
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


def plot_eval(result: BagEvalResult, out: Path, dpi: int = 80) -> list[Path]:
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


def run_eval(args: BagEvalArgs) -> int:
    """``bag eval``: table on stdout, metrics.json and the plots in ``args.out``."""
    result = evaluate_bag(args.bag, args.estimator, args.checkpoint, args.params_file,
                          args.namespace)
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
