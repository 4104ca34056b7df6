"""``reacher demo``'s window, in a process of its own: each camera frame with its own estimate.

The demo starts ``python -m reacher.window`` beside the nodes (:func:`start_window`). It
subscribes to one loop's camera, perception estimates and diagnostics, pairs every frame
with the estimates that carry the same stamp (:class:`FrameMatcher`; perception stamps
its outputs with the image's stamp), and draws the pair with a HUD: estimator,
controller, goals reached, success rate, achieved control and camera rates, latency and,
where the perception node publishes one, the estimate's confidence.

Why a process: in the demo's own process, the window (the drawing, and a pacing sleep
after each frame) took turns with the monitor's ROS callbacks, one callback per drawn
frame. The monitor then fell behind its subscriptions and lost /joint_commands from its
queue, so the demo reported 15.7 Hz for a loop whose policy ticked at 20 Hz (no deadline
miss), and the window drew frames and estimates from different moments. Here the ROS
callbacks spin in a thread that only files messages, the drawing happens in the main
thread, and the monitor's process does nothing but count.

With ``REACHER_WINDOW_SNAPSHOTS=DIR`` in its environment the window also saves every
20th pair it draws to DIR/<n>.npz (frame, joints, goal, stamp, the drawn image), so a test
or a person can check a frame against the estimate drawn on it.

The confidence comes from the topics of perception's estimate bundle (docs/ros.md):
``perception/estimate_status`` (its ``confidence`` value) and the standard deviations of
``perception/goal_pose`` and ``perception/fingertip_pose`` (:func:`confidence_value`).
A perception that does not publish them, or publishes no number (``nan``, the unknown
covariance), leaves the line out.
"""

from __future__ import annotations

import argparse
from collections import OrderedDict
from dataclasses import dataclass, field
import math
import os
from pathlib import Path
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
import numpy.typing as npt

Stamp = tuple[int, int]
"""(sec, nanosec) of a header stamp: the key that pairs a frame with its estimates."""
HUD_HEIGHT = 84
"""Pixels of text below the camera image."""
SCALE = 8
"""Camera pixels are drawn 8 x 8: a 64 x 64 frame fills 512 x 512."""
NO_ESTIMATE_AFTER_S = 0.5
"""Draw a frame without estimate when none of the newer frames got one for this long."""
SNAPSHOT_EVERY = 20
IDLE_WAIT_S = 0.05
"""Longest sleep between two looks at the window's events when nothing new arrives."""
CONFIDENCE_TOPICS = {'perception/estimate_status': 'confidence',
                     'perception/goal_pose': 'goal std m',
                     'perception/fingertip_pose': 'fingertip std m'}
"""Topic -> the name the HUD gives its figure."""


@dataclass
class Pair:
    """A camera frame and what perception estimated from that very frame.

    :param stamp: the frame's header stamp.
    :param frame: (H, W, 3) uint8 rgb8 pixels.
    :param joints: (2,) rad, or None when no estimate of this frame arrived.
    :param goal: (2,) metres in ``world``, or None.
    :param confidence: name -> value of the confidence topics that carried this stamp.
    """

    stamp: Stamp
    frame: npt.NDArray[np.uint8]
    joints: npt.NDArray[np.float64] | None = None
    goal: npt.NDArray[np.float64] | None = None
    confidence: dict[str, float] = field(default_factory=dict)


class FrameMatcher:
    """Pairs camera frames and estimates by stamp; hands out the newest complete pair.

    A pair is complete when both the joint and the goal estimate of its frame arrived.
    Frames and estimates older than the newest ``keep`` frames are forgotten.

    :param keep: how many recent frames to hold, >= 1.
    """

    def __init__(self, keep: int = 30) -> None:
        self.keep = keep
        self.pairs: OrderedDict[Stamp, Pair] = OrderedDict()
        self._early: dict[Stamp, dict[str, Any]] = {}
        self.last_taken: Stamp = (-1, 0)
        self.lock = threading.Lock()
        self.updated = threading.Event()
        """Set whenever something is filed: the drawing thread sleeps on it."""

    def add_frame(self, stamp: Stamp, frame: npt.NDArray[np.uint8]) -> None:
        """File a camera frame (an estimate may have come first)."""
        with self.lock:
            pair = Pair(stamp, frame)
            for key, value in self._early.pop(stamp, {}).items():
                if key == 'confidence':
                    pair.confidence.update(value)
                else:
                    setattr(pair, key, value)
            self.pairs[stamp] = pair
            while len(self.pairs) > self.keep:
                self.pairs.popitem(last=False)
            self._forget_early()
        self.updated.set()

    def add(self, stamp: Stamp, key: str, value: Any) -> None:
        """File an estimate part: ``key`` 'joints' or 'goal', or 'confidence' (name, value)."""
        with self.lock:
            pair = self.pairs.get(stamp)
            if key == 'confidence':
                name, number = value
                target = (pair.confidence if pair is not None else
                          self._early.setdefault(stamp, {}).setdefault('confidence', {}))
                target[name] = number
            elif pair is not None:
                setattr(pair, key, value)
            else:
                self._early.setdefault(stamp, {})[key] = value
        self.updated.set()

    def _forget_early(self) -> None:
        if self.pairs and len(self._early) > self.keep:
            oldest = next(iter(self.pairs))
            self._early = {s: v for s, v in self._early.items() if s >= oldest}

    def take(self, unmatched_after: int | None = None) -> Pair | None:
        """The newest complete pair newer than the last one taken, or None.

        :param unmatched_after: when given and no complete pair is new, the newest frame
            alone once at least this many newer frames arrived after the last one taken
            (perception is silent: show the camera anyway).
        """
        with self.lock:
            for stamp in reversed(self.pairs):
                if stamp <= self.last_taken:
                    break
                pair = self.pairs[stamp]
                if pair.joints is not None and pair.goal is not None:
                    self.last_taken = stamp
                    return pair
            if unmatched_after is not None and self.pairs:
                newer = [s for s in self.pairs if s > self.last_taken]
                if len(newer) >= unmatched_after:
                    self.last_taken = newer[-1]
                    return self.pairs[newer[-1]]
        return None


def confidence_value(msg: Any) -> float | None:
    """The confidence figure a message of :data:`CONFIDENCE_TOPICS` carries, or None.

    diagnostic_msgs/DiagnosticArray: the first status's ``confidence`` value, in [0, 1].
    geometry_msgs/PoseWithCovarianceStamped: the position's standard deviation, metres
    (sqrt of the mean of the x and y variances); None for the "unknown" covariance
    (element 0 negative, the sensor_msgs/Imu convention).
    """
    statuses = getattr(msg, 'status', None)
    if statuses is not None:
        for status in statuses[:1]:
            for pair in status.values:
                if pair.key == 'confidence':
                    try:
                        value = float(pair.value)
                    except ValueError:
                        return None
                    return value if math.isfinite(value) else None
        return None
    pose = getattr(msg, 'pose', None)
    covariance = getattr(pose, 'covariance', None)
    if covariance is None or len(covariance) < 8 or covariance[0] < 0 or covariance[7] < 0:
        return None
    return math.sqrt((float(covariance[0]) + float(covariance[7])) / 2.0)


def _hud_lines(info: dict[str, dict[str, str]], args: argparse.Namespace,
               pair: Pair | None) -> list[str]:
    sim, policy = info.get('sim_node', {}), info.get('policy_node', {})
    perception = info.get('perception_node', {})

    def num(values: dict[str, str], key: str, spec: str = '.1f') -> str:
        try:
            value = float(values[key])
        except (KeyError, ValueError):
            return '?'
        return format(value, spec) if math.isfinite(value) else '-'

    lines = [
        f'{perception.get("estimator", args.estimator)} / '
        f'{policy.get("controller", args.controller)}   camera '
        f'{num(sim, "camera_rate_hz")} Hz',
        f'goals reached {sim.get("goals_reached", "?")}, timed out '
        f'{sim.get("goals_timed_out", "?")}, success {num(sim, "success_rate", ".0%")}',
        f'control {num(policy, "rate_hz", ".2f")} of {num(policy, "configured_rate_hz")} Hz,'
        f' latency p50 {num(policy, "latency_ms_p50")} p99 {num(policy, "latency_ms_p99")} ms',
    ]
    if pair is not None and pair.joints is None:
        lines.append('no estimate for this frame')
    elif pair is not None and pair.confidence:
        lines.append(', '.join(
            f'{name} {value:.2f}' if name == 'confidence' else
            f'{name.replace(" m", "")} {value * 1e3:.1f} mm'
            for name, value in sorted(pair.confidence.items())))
    return lines


def render(pair: Pair, lines: list[str]) -> npt.NDArray[np.uint8]:
    """The frame scaled up, its estimate drawn over it in white, the HUD below.

    :return: (H * 8 + HUD_HEIGHT, W * 8, 3) uint8.
    """
    import cv2

    from reacher_common.kinematics import forward_kinematics
    from reacher_sim.camera import CameraModel

    size = pair.frame.shape[0]
    image = np.zeros((size * SCALE + HUD_HEIGHT, size * SCALE, 3), np.uint8)
    image[:size * SCALE] = cv2.resize(pair.frame, (size * SCALE, size * SCALE),
                                      interpolation=cv2.INTER_NEAREST)
    # Drawn with the default geometry (config/*.yaml); it is only a visual aid.
    camera = CameraModel(size * SCALE, 0.4)
    if pair.joints is not None:
        elbow, tip = forward_kinematics(pair.joints, 0.1, 0.1)
        points = camera.world_to_pixel(np.stack([np.zeros(2), elbow, tip])).round().astype(int)
        cv2.polylines(image, [points.reshape(-1, 1, 2)], False, (255, 255, 255), 1,
                      cv2.LINE_AA)
    if pair.goal is not None:
        centre = camera.world_to_pixel(pair.goal).round().astype(int)
        cv2.drawMarker(image, (int(centre[0]), int(centre[1])), (255, 255, 255),
                       cv2.MARKER_CROSS, 16, 1)
    for index, line in enumerate(lines):
        cv2.putText(image, line, (8, size * SCALE + 18 + 20 * index),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
    return image


class WindowNode:
    """The ROS side: subscriptions that file messages into a :class:`FrameMatcher`."""

    def __init__(self, namespace: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PointStamped
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState

        self.matcher = FrameMatcher()
        self.info: dict[str, dict[str, str]] = {}
        self.node = Node('reacher_demo_window', namespace=namespace)
        self.node.create_subscription(Image, 'camera/image_raw', self._image,
                                      qos_profile_sensor_data)
        self.node.create_subscription(JointState, 'perception/joint_states', self._joints, 10)
        self.node.create_subscription(PointStamped, 'perception/goal', self._goal, 10)
        self.node.create_subscription(DiagnosticArray, 'diagnostics', self._diagnostics, 10)
        from diagnostic_msgs.msg import DiagnosticArray as Status
        from geometry_msgs.msg import PoseWithCovarianceStamped

        for topic, name in CONFIDENCE_TOPICS.items():
            kind = Status if topic.endswith('status') else PoseWithCovarianceStamped
            self.node.create_subscription(kind, topic, self._confidence_callback(name), 10)

    def _image(self, msg: Any) -> None:
        from reacher_common.ros_utils import image_to_array

        try:
            frame = np.array(image_to_array(msg, msg.width))
        except ValueError:
            return
        self.matcher.add_frame((msg.header.stamp.sec, msg.header.stamp.nanosec), frame)

    def _joints(self, msg: Any) -> None:
        if len(msg.position) >= 2:
            self.matcher.add(_stamp(msg), 'joints', np.array(msg.position[:2]))

    def _goal(self, msg: Any) -> None:
        self.matcher.add(_stamp(msg), 'goal', np.array([msg.point.x, msg.point.y]))

    def _diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            node = status.name.split(':')[0].strip().rsplit('/', 1)[-1]
            self.info[node] = {kv.key: kv.value for kv in status.values}

    def _confidence_callback(self, name: str) -> Any:
        def callback(msg: Any) -> None:
            self._confidence(name, msg)
        return callback

    def _confidence(self, name: str, msg: Any) -> None:
        value = confidence_value(msg)
        if value is not None:
            self.matcher.add(_stamp(msg), 'confidence', (name, value))


def save_snapshot(path: Path, pair: Pair, image: npt.NDArray[np.uint8]) -> None:
    """Write one drawn pair (see the module docstring)."""
    nan = np.full(2, np.nan)
    np.savez(path, frame=pair.frame, image=image, stamp=np.array(pair.stamp),
             joints=nan if pair.joints is None else pair.joints,
             goal=nan if pair.goal is None else pair.goal)


def _stamp(msg: Any) -> Stamp:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def run_window(args: argparse.Namespace) -> int:
    """Open the window, spin the subscriptions in a thread, draw in this one."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from reacher_sim.viewer import Viewer

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        viewer = Viewer(title=args.title, fps=args.fps,
                        window_size=(64 * SCALE, 64 * SCALE + HUD_HEIGHT))
    except Exception as error:  # noqa: BLE001 -- one line for the demo to show
        print(f'cannot open the window: {error.__cause__ or error}', file=sys.stderr,
              flush=True)
        return 3
    rclpy.init()
    window = WindowNode(args.namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(window.node)

    def spin() -> None:
        # A message the window cannot use must not stop it: say so and go on.
        while rclpy.ok():
            try:
                executor.spin_once(timeout_sec=0.1)
            except ExternalShutdownException:
                return
            except Exception as error:  # noqa: BLE001
                print(f'window: a callback failed: {error!r}', file=sys.stderr, flush=True)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    print('window open', flush=True)
    last_drawn = time.monotonic()
    drawn = 0
    snapshots = os.environ.get('REACHER_WINDOW_SNAPSHOTS')
    if snapshots:
        Path(snapshots).mkdir(parents=True, exist_ok=True)
    try:
        while not viewer.closed:
            quiet = time.monotonic() - last_drawn > NO_ESTIMATE_AFTER_S
            window.matcher.updated.clear()
            pair = window.matcher.take(unmatched_after=1 if quiet else None)
            if pair is None:
                # Sleep until a message is filed; wake now and then for the window's events.
                viewer.idle()
                window.matcher.updated.wait(IDLE_WAIT_S)
                continue
            image = render(pair, _hud_lines(window.info, args, pair))
            viewer.show(image)
            last_drawn = time.monotonic()
            drawn += 1
            if snapshots and drawn % SNAPSHOT_EVERY == 0:
                save_snapshot(Path(snapshots) / f'{drawn // SNAPSHOT_EVERY:04d}.npz', pair, image)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.close()
        executor.shutdown(timeout_sec=1.0)
        window.node.destroy_node()
        rclpy.try_shutdown()
    return 0


def start_window(namespace: str, title: str, estimator: str, controller: str,
                 env: dict[str, str], log: Path, timeout: float = 30.0
                 ) -> subprocess.Popen[bytes]:
    """Start the window process and wait until its window is open.

    :param env: the environment (DDS settings) of the loop's nodes.
    :param log: where the process's output goes after it said it is open.
    :raises ValueError: with the window's reason when it cannot open (no display, no
        pyglet) or does not open within ``timeout`` seconds.
    """
    process = subprocess.Popen(
        [sys.executable, '-m', 'reacher.window', '--namespace', namespace, '--title', title,
         '--estimator', estimator, '--controller', controller],
        stdout=subprocess.PIPE, stderr=open(log, 'wb'),  # noqa: SIM115 - with the process
        env=env, start_new_session=True)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline().decode(errors='replace') if ready else ''
    if 'window open' not in line:
        if process.poll() is None:
            process.kill()
        process.wait()
        reason = log.read_text(errors='replace').strip().splitlines()
        raise ValueError(f'the demo window needs a display ({reason[-1] if reason else line})'
                         ': pass --headless, set DISPLAY, or run under xvfb-run')
    os.set_blocking(process.stdout.fileno(), False)
    return process


def main(argv: list[str] | None = None) -> int:
    """``python -m reacher.window --namespace NS``: what :func:`start_window` runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--namespace', default='/')
    parser.add_argument('--title', default='reacher')
    parser.add_argument('--estimator', default='?')
    parser.add_argument('--controller', default='?')
    parser.add_argument('--fps', type=float, default=60.0,
                        help='at most this many frames drawn per second')
    return run_window(parser.parse_args(argv))


if __name__ == '__main__':
    raise SystemExit(main())
