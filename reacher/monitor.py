"""The demo's monitor: a node that watches the loop and collects the summary's figures.

It counts /joint_commands to measure the achieved control rate, reads the nodes'
/diagnostics for goal counters and latency, resets the simulator's statistics once the
loop is closed, and (optionally) shows the camera with the perception estimate drawn over
it in a window.
"""

from __future__ import annotations

import math
import subprocess
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from tqdm import tqdm

from reacher_common.ros_utils import image_to_array


class LoopMonitor:
    """Watches the running loop from inside the demo process.

    :param show_window: open a pyglet window with the camera view and the estimates.
    """

    def __init__(self, show_window: bool = False) -> None:
        rclpy.init()
        self.node = Node('reacher_demo_monitor')
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.diagnostics_time: dict[str, float] = {}
        self.command_times: list[float] = []
        self.frame: Any = None
        self.estimate: Any = None
        self.goal_estimate: Any = None
        node = self.node
        node.create_subscription(DiagnosticArray, '/diagnostics', self._diagnostics, 50)
        node.create_subscription(Float64MultiArray, '/joint_commands', self._command, 50)
        self.reset_client = node.create_client(Trigger, '/sim_node/reset')
        self.viewer: Any = None
        if show_window:
            from reacher_sim.viewer import Viewer
            node.create_subscription(Image, '/camera/image_raw', self._image, QoSProfile(depth=1))
            node.create_subscription(JointState, '/perception/joint_states',
                                     self._joints, 10)
            node.create_subscription(PointStamped, '/perception/goal', self._goal, 10)
            try:
                self.viewer = Viewer(title='reacher: camera (estimate in white)', fps=60)
            except Exception as error:
                self.close()
                raise ValueError(f'the demo window needs a display ({error.__cause__ or error}): '
                                 'pass --headless, set DISPLAY, or run under xvfb-run') from error

    def _diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}
            self.diagnostics_time[status.name] = time.monotonic()

    def _command(self, msg: Float64MultiArray) -> None:
        self.command_times.append(time.monotonic())

    def _image(self, msg: Image) -> None:
        try:
            self.frame = np.array(image_to_array(msg, msg.width))
        except ValueError:
            pass

    def _joints(self, msg: JointState) -> None:
        self.estimate = np.array(msg.position[:2])

    def _goal(self, msg: PointStamped) -> None:
        self.goal_estimate = np.array([msg.point.x, msg.point.y])

    def _spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            rclpy.spin_once(self.node, timeout_sec=min(remaining, 0.02))
            if self.viewer is not None and self.frame is not None:
                self.viewer.show(self._overlay())

    def _overlay(self) -> Any:
        import cv2

        from reacher_common.kinematics import forward_kinematics
        from reacher_sim.camera import CameraModel

        scale = 8
        size = self.frame.shape[0]
        image = cv2.resize(self.frame, (size * scale, size * scale),
                           interpolation=cv2.INTER_NEAREST)
        if self.estimate is not None:
            # Draw with the default geometry (config/*.yaml); it is only a visual aid.
            camera = CameraModel(size * scale, 0.4)
            elbow, tip = forward_kinematics(self.estimate, 0.1, 0.1)
            points = camera.world_to_pixel(np.stack([np.zeros(2), elbow, tip]))
            points = points.round().astype(int)
            cv2.polylines(image, [points.reshape(-1, 1, 2)], False, (255, 255, 255), 1,
                          cv2.LINE_AA)
            if self.goal_estimate is not None:
                centre = camera.world_to_pixel(self.goal_estimate).round().astype(int)
                cv2.drawMarker(image, tuple(int(c) for c in centre), (255, 255, 255),
                               cv2.MARKER_CROSS, 16, 1)
        return image

    def _sim(self) -> dict[str, str]:
        return next((v for k, v in self.diagnostics.items() if k.startswith('sim_node')), {})

    def _status(self, prefix: str) -> dict[str, str]:
        return next((v for k, v in self.diagnostics.items() if k.startswith(prefix)), {})

    def wait_for_loop(self, processes: dict[str, subprocess.Popen[bytes]],
                      timeout: float) -> str | None:
        """Wait until commands flow and the simulator answers; reset its statistics.

        :return: the name of a node that exited or never came up, or None when ready.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in processes.items():
                if process.poll() is not None:
                    return name
            ready = (self.command_times and self._sim()
                     and self._status('policy_node').get('latency_samples', '0') != '0')
            if ready and self.reset_client.service_is_ready():
                future = self.reset_client.call_async(Trigger.Request())
                rclpy.spin_until_future_complete(self.node, future, timeout_sec=5.0)
                if future.done():
                    return None
            self._spin(0.1)
        waiting = [name for name, p in processes.items() if p.poll() is None]
        return waiting[0] if waiting else 'sim_node'

    def measure(self, duration: float, processes: dict[str, subprocess.Popen[bytes]]) -> None:
        """Spin for ``duration`` seconds, showing progress; then collect fresh diagnostics."""
        self.command_times.clear()
        self.start = time.monotonic()
        # disable=None: a bar on a terminal, nothing in a log file or CI.
        bar = tqdm(total=round(duration), unit='s', desc='reaching', leave=False,
                   disable=None, bar_format='{desc} |{bar}| {n:.0f}/{total:.0f} s')
        while (elapsed := time.monotonic() - self.start) < duration:
            if any(p.poll() is not None for p in processes.values()):
                break
            self._spin(min(0.5, duration - elapsed))
            sim = self._sim()
            bar.n = min(round(elapsed), bar.total)
            bar.set_description_str(f'goals reached {sim.get("goals_reached", "?")}, '
                                    f'timed out {sim.get("goals_timed_out", "?")}')
        bar.close()
        self.end = time.monotonic()
        # Diagnostics come once a second: take the first set published after the end.
        wait_until = time.monotonic() + 3.0
        while time.monotonic() < wait_until and not all(
                self.diagnostics_time.get(name, 0.0) > self.end
                for name in self.diagnostics if name.startswith(('sim_node', 'policy_node'))):
            self._spin(0.05)

    def fill(self, summary: Any) -> None:
        """Write the measured figures into a :class:`reacher.demo.Summary`."""
        sim, policy = self._sim(), self._status('policy_node')
        perception = self._status('perception_node')
        window = [t for t in self.command_times if self.start <= t <= self.end]
        summary.goals_reached = int(sim.get('goals_reached', 0))
        summary.goals_timed_out = int(sim.get('goals_timed_out', 0))
        summary.success_rate = _float(sim.get('success_rate'))
        summary.mean_time_to_goal_s = _float(sim.get('mean_time_to_goal_s'))
        if len(window) > 1:
            summary.achieved_control_rate_hz = (len(window) - 1) / (window[-1] - window[0])
        summary.configured_control_rate_hz = _float(policy.get('configured_rate_hz'))
        summary.latency_ms_p50 = _float(policy.get('latency_ms_p50'))
        summary.latency_ms_p99 = _float(policy.get('latency_ms_p99'))
        summary.deadline_misses = int(policy.get('deadline_misses', 0))
        summary.stale_stops = int(policy.get('stale_stops', 0))
        summary.perception_inference_ms_p50 = _float(perception.get('inference_ms_p50'))

    def close(self) -> None:
        """Close the window and shut this process's rclpy down."""
        if self.viewer is not None:
            self.viewer.close()
        self.node.destroy_node()
        rclpy.try_shutdown()


def _float(value: str | None) -> float:
    try:
        return float(value) if value is not None else math.nan
    except ValueError:
        return math.nan
