"""perception_node: estimates the arm and the goal from /camera/image_raw alone.

Subscribes /camera/image_raw (sensor_msgs/Image, rgb8); publishes for each frame,
stamped with the image's stamp, the estimate bundle of ``reacher_common.estimate_msgs``:
/perception/joint_states (sensor_msgs/JointState), /perception/goal
(geometry_msgs/PointStamped in ``world``) and /perception/estimate_status
(diagnostic_msgs/DiagnosticArray: confidence, standard deviations, visibility, timing),
which the policy pairs by stamp; then /perception/goal_pose and
/perception/fingertip_pose (geometry_msgs/PoseWithCovarianceStamped, the covariance from
the estimate's standard deviations), /perception/fingertip (PointStamped),
/perception/latent (sensor_msgs/Image, 1 x N 32FC1 with the frame's stamp, when the
estimator has a latent state)
and the estimated arm and goal as a ghost on /visualization/markers. /diagnostics
reports the inference time, rate, dropped frames and the confidence's statistics. The
``estimator`` parameter picks the backend
(reacher_perception.estimator.ESTIMATORS). With ``rectify`` (the default) each frame is
first rectified with /camera/camera_info of its stamp (the newest earlier one when its
own has not come), as image_proc does: a nudged camera's frame is read in the camera the
estimator knows; a malformed CameraInfo is logged (throttled) and dropped. A malformed
image is logged (throttled, its size only) and dropped, an oversize one counted apart
(``oversize_images``); a frame the
estimator fails on is dropped, logged (throttled) and counted (``estimator_errors``), and
the estimator's memory restarts; the node keeps running. Only ``warn_throttle_s`` changes
at run time; the other parameters are read-only.
"""

from __future__ import annotations

from collections.abc import Callable
import math
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped, PoseWithCovarianceStamped
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import QoSMessageLostInfo, SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, Header
from visualization_msgs.msg import MarkerArray

from reacher_common.camera_calibration import CameraCalibration, StampedRectifier
from reacher_common.config_tools import FieldError
from reacher_common.estimate_msgs import (
    estimate_status,
    FINGERTIP_POSE_TOPIC,
    FINGERTIP_TOPIC,
    GOAL_POSE_TOPIC,
    GOAL_TOPIC,
    JOINTS_TOPIC,
    latent_image,
    LATENT_TOPIC,
    pose_with_covariance,
    STATUS_TOPIC,
    UNSURE_BELOW,
)
from reacher_common.geometry import ArmGeometry
from reacher_common.markers import arm_marker, goal_marker
from reacher_common.ros_params import (
    declare_config,
    parameter_message,
    ParameterError,
    refuse_parameters,
    updated_config,
)
from reacher_common.ros_utils import (
    CallbackErrors,
    command_from_serialized,
    diagnostic_array,
    diagnostic_status,
    image_to_array,
    JOINT_NAMES,
    point_stamped,
    RateMeter,
    run_node,
    stamp_to_nanoseconds,
    stamp_to_seconds,
    WORLD_FRAME,
)
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import make_estimator
from reacher_sim.camera import CameraModel

ESTIMATE = 'estimate'
"""The name under which a frame whose estimate failed is counted and logged."""

CAMERA_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
"""The camera subscription: sensor-data QoS (REP-2003) of depth 1 (the newest frame; at
most one frame waits in the queue, whatever its size). Best effort matches reliable
publishers (the sim) and best-effort ones (most camera drivers); a reliable subscription
gets nothing from the latter ("incompatible QoS")."""


CAMERA_INFO_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                             reliability=ReliabilityPolicy.BEST_EFFORT,
                             durability=DurabilityPolicy.VOLATILE)
"""The calibration subscription: sensor-data QoS like the frames', a few deep so the
calibration of a frame still waiting is kept."""


class PerceptionNode(Node):
    """The rclpy shell over a pluggable :class:`reacher_perception.estimator.Estimator`."""

    def __init__(self) -> None:
        super().__init__('perception_node')
        self.config = declare_config(self, PerceptionConfig, runtime=('warn_throttle_s',),
                                     geometry=declare_config(self, ArmGeometry))
        try:
            self.estimator = make_estimator(self.config)
        except FieldError as error:
            raise ParameterError(parameter_message(error)) from error
        self.last_command: np.ndarray | None = None
        self.rate = RateMeter()
        self.inference_ms: list[float] = []
        self.confidences: list[float] = []
        self.unsure_frames = 0
        self.frames_without_confidence = 0
        self.dropped_images = 0
        self.oversize_images = 0
        self.lost_images = 0
        self.arm_lost = 0
        self.goal_lost = 0
        self.errors = CallbackErrors(self, lambda: self.config.warn_throttle_s)
        guard = self.errors.guard
        size = self.config.geometry.image_size
        self.frame_bytes = size * size * 3

        # Relative names: they resolve under the node's namespace (docs/architecture.md).
        self.intra_process: dict[str, Callable[[Any], None]] = {}
        self.joint_pub = self.create_publisher(JointState, JOINTS_TOPIC, 10)
        self.goal_pub = self.create_publisher(PointStamped, GOAL_TOPIC, 10)
        self.status_pub = self.create_publisher(DiagnosticArray, STATUS_TOPIC, 10)
        self.fingertip_pub = self.create_publisher(PointStamped, FINGERTIP_TOPIC, 10)
        self.goal_pose_pub = self.create_publisher(PoseWithCovarianceStamped,
                                                   GOAL_POSE_TOPIC, 10)
        self.fingertip_pose_pub = self.create_publisher(PoseWithCovarianceStamped,
                                                        FINGERTIP_POSE_TOPIC, 10)
        self.latent_pub = self.create_publisher(Image, LATENT_TOPIC, 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, 'diagnostics', 10)
        self.marker_pub = self.create_publisher(MarkerArray, 'visualization/markers', 10)
        self.link_lengths = self.config.geometry.link_lengths
        # Frames DDS drops are counted (message-lost event).
        self.create_subscription(
            Image, 'camera/image_raw',
            guard(self.image_callback, ESTIMATE, fallback=self.forget_callback),
            CAMERA_QOS, event_callbacks=SubscriptionEventCallbacks(
                message_lost=guard(self.lost_callback, 'lost frames')))
        self.rectifier = StampedRectifier()
        self.dropped_camera_infos = 0
        self.foreign_camera_infos = 0
        self.last_camera_info: tuple[Any, CameraCalibration] | None = None
        self.nominal_intrinsics = CameraModel.from_geometry(self.config.geometry).intrinsics()
        if self.config.rectify:
            self.create_subscription(CameraInfo, 'camera/camera_info',
                                     guard(self.camera_info_callback, 'camera info'),
                                     CAMERA_INFO_QOS)
        # The filtering estimators condition on the last command (SLAC's q(z_t+1|x, z_t, a_t)).
        # Serialized, sized before conversion: a flood of huge commands costs little.
        self.create_subscription(Float64MultiArray, 'joint_commands',
                                 guard(self.command_callback, 'command'), 10, raw=True)
        self.create_timer(1.0, guard(self.publish_diagnostics, 'diagnostics'))
        self.add_on_set_parameters_callback(guard(
            self.validate_parameters, 'parameter check', fallback=refuse_parameters))
        self.add_post_set_parameters_callback(guard(self.apply_parameters, 'parameter change'))
        self.get_logger().info(f'estimator {self.config.estimator!r} on '
                               f'{self.config.geometry.image_size}x'
                               f'{self.config.geometry.image_size} rgb8 frames')

    def command_callback(self, serialized: bytes) -> None:
        """Remember the newest well-formed joint command (others are ignored).

        :param serialized: the CDR bytes of a std_msgs/Float64MultiArray.
        """
        try:
            self.last_command = command_from_serialized(serialized)
        except ValueError:
            pass  # the sim warns about bad commands; here they are just not used

    def camera_info_callback(self, msg: CameraInfo) -> None:
        """Keep a frame's calibration for its frame; drop (throttled warning) a bad one.

        A camera sends the same calibration with every frame: one equal to the last
        accepted one (the same values, byte for byte) is not checked again (~10 us against
        ~0.2 ms).
        """
        stamp_ns = stamp_to_nanoseconds(msg.header.stamp)
        key = (msg.width, msg.height, msg.distortion_model, bytes(memoryview(msg.d)),
               msg.k.tobytes(), msg.r.tobytes(), msg.p.tobytes())
        if self.last_camera_info is not None and key == self.last_camera_info[0]:
            self.rectifier.add(stamp_ns, self.last_camera_info[1])
            return
        size = self.config.geometry.image_size
        try:
            calibration = CameraCalibration.from_message(msg)
            if (calibration.width, calibration.height) != (size, size):
                raise ValueError(f'it is {calibration.width}x{calibration.height}, the '
                                 f'frames are {size}x{size}')
        except ValueError as error:
            self.dropped_camera_infos += 1
            self.get_logger().warning(f'dropped /camera/camera_info: {error}',
                                      throttle_duration_sec=self.config.warn_throttle_s)
            return
        if not np.allclose(calibration.p[:, :3], self.nominal_intrinsics, rtol=0.0,
                           atol=1e-3 * self.nominal_intrinsics[0, 0]):
            self.foreign_camera_infos += 1
            p = calibration.p
            self.get_logger().warning(
                f'/camera/camera_info rectifies to fx={p[0, 0]:.2f} cx={p[0, 2]:.2f} '
                f'cy={p[1, 2]:.2f}, not the camera of the geometry the estimator reads '
                f'(fx={self.nominal_intrinsics[0, 0]:.2f} cx={self.nominal_intrinsics[0, 2]:.2f}'
                f' cy={self.nominal_intrinsics[1, 2]:.2f}): its estimates assume the latter',
                throttle_duration_sec=self.config.warn_throttle_s)
        self.last_camera_info = (key, calibration)
        self.rectifier.add(stamp_ns, calibration)

    def forget_callback(self, msg: Image) -> None:
        """After the estimator raised on a frame: restart its memory from the next one."""
        self.estimator.reset()

    def lost_callback(self, info: QoSMessageLostInfo) -> None:
        """Count the frames that DDS dropped before the node could take them."""
        self.lost_images = info.total_count

    def image_callback(self, msg: Image) -> None:
        """Estimate from one frame and publish its bundle, stamped with the frame's stamp.

        The policy's parts (joints, goal, status, and the latent its ``slac`` controller
        reads) go first, so that its bundle is complete as early as possible; the poses,
        the fingertip and the markers follow.
        """
        received_s = self.get_clock().now().nanoseconds * 1e-9
        start = time.perf_counter()
        if len(msg.data) > self.frame_bytes:
            self.oversize_images += 1
            self.get_logger().warning(
                f'dropped /camera/image_raw: oversize frame, {len(msg.data)} bytes '
                f'({msg.width}x{msg.height}) where {self.frame_bytes} are expected',
                throttle_duration_sec=self.config.warn_throttle_s)
            return
        try:
            pixels = image_to_array(msg, self.config.geometry.image_size)
        except ValueError as error:
            self.dropped_images += 1
            self.get_logger().warning(f'dropped /camera/image_raw: {error}',
                                      throttle_duration_sec=self.config.warn_throttle_s)
            return
        if self.config.rectify:
            pixels = self.rectifier(stamp_to_nanoseconds(msg.header.stamp), pixels)
        estimate = self.estimator.estimate(pixels, self.last_command)
        inference_ms = (time.perf_counter() - start) * 1e3
        self.inference_ms.append(inference_ms)
        del self.inference_ms[:-1000]
        self.rate.tick()
        self.arm_lost += not estimate.arm_visible
        self.goal_lost += not estimate.goal_visible
        self.count_confidence(estimate.confidence)
        header = Header(stamp=msg.header.stamp, frame_id=WORLD_FRAME)
        parts = [(self.joint_pub, JOINTS_TOPIC, JointState(
                     header=header, name=list(JOINT_NAMES),
                     position=estimate.joint_positions.tolist())),
                 (self.goal_pub, GOAL_TOPIC, point_stamped(estimate.goal, header)),
                 (self.status_pub, STATUS_TOPIC, estimate_status(header, {
                     'confidence': estimate.confidence,
                     'joint_std_rad': estimate.joint_std_rad,
                     'fingertip_std_m': estimate.fingertip_std_m,
                     'goal_std_m': estimate.goal_std_m,
                     'arm_visible': estimate.arm_visible,
                     'goal_visible': estimate.goal_visible,
                     'frame_to_perception_ms':
                         (received_s - stamp_to_seconds(msg.header.stamp)) * 1e3,
                     'inference_ms': inference_ms}))]
        if estimate.latent is not None:
            parts.append((self.latent_pub, LATENT_TOPIC, latent_image(header, estimate.latent)))
        self.publish_parts(parts)
        self.goal_pose_pub.publish(pose_with_covariance(estimate.goal, estimate.goal_std_m,
                                                        header))
        self.fingertip_pose_pub.publish(pose_with_covariance(
            estimate.fingertip, estimate.fingertip_std_m, header))
        self.fingertip_pub.publish(point_stamped(estimate.fingertip, header))
        self.marker_pub.publish(MarkerArray(markers=[
            arm_marker('perception/arm', estimate.joint_positions, self.link_lengths,
                       msg.header.stamp, (1.0, 1.0, 1.0, 0.5), width=0.004, z=0.003),
            goal_marker('perception/goal', estimate.goal, self.config.geometry.goal_size_m,
                        msg.header.stamp, (1.0, 1.0, 1.0, 0.8), wireframe=True),
        ]))

    def publish_parts(self, parts: list[tuple[Any, str, Any]]) -> None:
        """Publish the parts of a frame's bundle, handing them to same-process subscribers first.

        :param parts: (publisher, topic, message) of each part.

        :attr:`intra_process` maps a part's topic to a callback of a node in this process
        (``reacher.composed``: the policy's part callbacks). Each gets the message object
        itself before any part goes to DDS, as rclcpp delivers intra-process before it
        publishes inter-process; so a composed policy's command for the frame leaves
        before the bundle's DDS copies are written (the estimate's stage: 0.33-0.40 ms
        p50 when each part was handed over after its DDS publication).
        """
        for _, topic, msg in parts:
            callback = self.intra_process.get(topic)
            if callback is not None:
                callback(msg)
        for publisher, _, msg in parts:
            publisher.publish(msg)

    def count_confidence(self, confidence: float) -> None:
        """Keep the confidence for /diagnostics: a window of the last 1000, and counts."""
        if math.isnan(confidence):
            self.frames_without_confidence += 1
            return
        self.confidences.append(confidence)
        del self.confidences[:-1000]
        self.unsure_frames += confidence < UNSURE_BELOW

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
            'oversize_images': self.oversize_images,
            'lost_images': self.lost_images,
            'estimator_errors': self.errors.counts.get(ESTIMATE, 0),
            'callback_errors': self.errors.total(),
            'frames_without_arm': self.arm_lost,
            'frames_without_goal': self.goal_lost,
            'rectified_frames': self.rectifier.rectified_frames,
            'frames_without_camera_info': self.rectifier.frames_without_calibration,
            'unpaired_camera_info_frames': self.rectifier.unpaired_frames,
            'dropped_camera_infos': self.dropped_camera_infos,
            'foreign_camera_infos': self.foreign_camera_infos,
            **self.confidence_statistics(),
        }
        failing = self.errors.failed_since_last_asked(ESTIMATE)
        if failing:
            level = DiagnosticStatus.ERROR
            message = f'estimator failed: {self.errors.last_error[ESTIMATE]}'
        elif self.rate.count > 0 and self.recently_unsure():
            level = DiagnosticStatus.WARN
            message = f'unsure: confidence below {UNSURE_BELOW} on most recent frames'
        elif self.rate.count > 0:
            level, message = DiagnosticStatus.OK, 'ok'
        else:
            level, message = DiagnosticStatus.WARN, 'no camera frames yet'
        self.diagnostics_pub.publish(diagnostic_array(self, [diagnostic_status(
            self, 'estimator', values, level, message)]))

    def confidence_statistics(self) -> dict[str, float | int]:
        """The confidence of the last 1000 frames that have one, and the counts since start.

        Keys: ``confidence.p05`` / ``.p50`` / ``.mean`` / ``.min`` (nan before any),
        ``confidence.unsure_frames`` (frames below :data:`UNSURE_BELOW`) and
        ``confidence.unknown_frames`` (frames whose estimator gave none).
        """
        window = np.asarray(self.confidences or [np.nan])
        return {'confidence.p05': float(np.percentile(window, 5)),
                'confidence.p50': float(np.percentile(window, 50)),
                'confidence.mean': float(np.mean(window)),
                'confidence.min': float(np.min(window)),
                'confidence.unsure_frames': self.unsure_frames,
                'confidence.unknown_frames': self.frames_without_confidence}

    def recently_unsure(self) -> bool:
        """Whether most of the last 20 confident-or-not frames were unsure."""
        recent = self.confidences[-20:]
        return bool(recent) and float(np.median(recent)) < UNSURE_BELOW

    def validate_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Accept a valid ``warn_throttle_s``; rclpy already refused the read-only ones."""
        try:
            updated_config(self.config, parameters)
        except ParameterError as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def apply_parameters(self, parameters: list[Parameter]) -> None:
        """Use the new throttle from the next warning on."""
        self.config = updated_config(self.config, parameters)


def main(args: list[str] | None = None) -> int:
    """Console entry point ``perception_node``."""
    return run_node(PerceptionNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
