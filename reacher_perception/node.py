"""perception_node: estimates the arm and the goal from /camera/image_raw alone.

Subscribes /camera/image_raw (sensor_msgs/Image, rgb8); publishes, stamped with the
image's stamp, /perception/joint_states (sensor_msgs/JointState), /perception/fingertip
and /perception/goal (geometry_msgs/PointStamped in ``world``), /perception/latent
(std_msgs/Float32MultiArray, when the estimator has a latent state), the estimated arm
and goal as a ghost on /visualization/markers, and /diagnostics (inference time, rate,
dropped frames). The ``estimator`` parameter picks the backend
(reacher_perception.estimator.ESTIMATORS). A malformed image is logged (throttled) and
dropped; the node keeps running.
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray, Header
from visualization_msgs.msg import MarkerArray

from reacher_common.geometry import ArmGeometry
from reacher_common.markers import arm_marker, goal_marker
from reacher_common.ros_utils import (
    declare_config,
    diagnostic_array,
    diagnostic_status,
    image_to_array,
    JOINT_NAMES,
    point_stamped,
    RateMeter,
    run_node,
    WORLD_FRAME,
)
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import make_estimator

CAMERA_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
"""The camera subscription: sensor-data QoS (REP-2003) of depth 1 (the newest frame). Best
effort matches reliable publishers (the sim) and best-effort ones (most camera drivers); a
reliable subscription gets nothing from the latter ("incompatible QoS")."""


class PerceptionNode(Node):
    """The rclpy shell over a pluggable :class:`reacher_perception.estimator.Estimator`."""

    def __init__(self) -> None:
        super().__init__('perception_node')
        self.config = declare_config(self, PerceptionConfig,
                                     geometry=declare_config(self, ArmGeometry))
        self.estimator = make_estimator(self.config)
        self.last_command: np.ndarray | None = None
        self.rate = RateMeter()
        self.inference_ms: list[float] = []
        self.dropped_images = 0
        self.arm_lost = 0
        self.goal_lost = 0

        # Relative names: they resolve under the node's namespace (docs/architecture.md).
        self.joint_pub = self.create_publisher(JointState, 'perception/joint_states', 10)
        self.fingertip_pub = self.create_publisher(PointStamped, 'perception/fingertip', 10)
        self.goal_pub = self.create_publisher(PointStamped, 'perception/goal', 10)
        self.latent_pub = self.create_publisher(Float32MultiArray, 'perception/latent', 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)
        self.marker_pub = self.create_publisher(MarkerArray, 'visualization/markers', 10)
        self.link_lengths = self.config.geometry.link_lengths
        self.create_subscription(Image, 'camera/image_raw', self.image_callback, CAMERA_QOS)
        # The filtering estimators condition on the last command (SLAC's q(z_t+1|x, z_t, a_t)).
        self.create_subscription(Float64MultiArray, 'joint_commands', self.command_callback, 10)
        self.create_timer(1.0, self.publish_diagnostics)
        self.get_logger().info(f'estimator {self.config.estimator!r} on '
                               f'{self.config.geometry.image_size}x'
                               f'{self.config.geometry.image_size} rgb8 frames')

    def command_callback(self, msg: Float64MultiArray) -> None:
        """Remember the newest well-formed joint command (ignored otherwise)."""
        values = np.asarray(msg.data, dtype=np.float64)
        if values.shape == (2,) and np.all(np.isfinite(values)):
            self.last_command = values

    def image_callback(self, msg: Image) -> None:
        """Estimate from one frame and publish the estimates with the frame's stamp."""
        try:
            pixels = image_to_array(msg, self.config.geometry.image_size)
        except ValueError as error:
            self.dropped_images += 1
            self.get_logger().warning(f'dropped /camera/image_raw: {error}',
                                      throttle_duration_sec=self.config.warn_throttle_s)
            return
        start = time.perf_counter()
        estimate = self.estimator.estimate(pixels, self.last_command)
        self.inference_ms.append((time.perf_counter() - start) * 1e3)
        del self.inference_ms[:-1000]
        self.rate.tick()
        self.arm_lost += not estimate.arm_visible
        self.goal_lost += not estimate.goal_visible
        header = Header(stamp=msg.header.stamp, frame_id=WORLD_FRAME)
        self.joint_pub.publish(JointState(header=header, name=list(JOINT_NAMES),
                                          position=estimate.joint_positions.tolist()))
        self.fingertip_pub.publish(point_stamped(estimate.fingertip, header))
        self.goal_pub.publish(point_stamped(estimate.goal, header))
        self.marker_pub.publish(MarkerArray(markers=[
            arm_marker('perception/arm', estimate.joint_positions, self.link_lengths,
                       msg.header.stamp, (1.0, 1.0, 1.0, 0.5), width=0.004, z=0.003),
            goal_marker('perception/goal', estimate.goal, self.config.geometry.goal_size_m,
                        msg.header.stamp, (1.0, 1.0, 1.0, 0.8), wireframe=True),
        ]))
        if estimate.latent is not None:
            self.latent_pub.publish(Float32MultiArray(data=estimate.latent.ravel().tolist()))

    def publish_diagnostics(self) -> None:
        """Inference time, achieved rate and estimator health on /diagnostics."""
        times = np.asarray(self.inference_ms or [np.nan])
        values = {
            'estimator': self.config.estimator,
            'rate_hz': self.rate.rate_hz(),
            'frames': self.rate.count,
            'inference_ms_p50': float(np.percentile(times, 50)),
            'inference_ms_p99': float(np.percentile(times, 99)),
            'dropped_images': self.dropped_images,
            'frames_without_arm': self.arm_lost,
            'frames_without_goal': self.goal_lost,
        }
        healthy = self.rate.count > 0
        level = DiagnosticStatus.OK if healthy else DiagnosticStatus.WARN
        self.diagnostics_pub.publish(diagnostic_array(self, [diagnostic_status(
            self, 'estimator', values, level, 'ok' if healthy else 'no camera frames yet')]))


def main(args: list[str] | None = None) -> int:
    """Console entry point ``perception_node``."""
    return run_node(PerceptionNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
