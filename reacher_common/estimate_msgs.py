"""The per-frame estimate bundle as standard ROS messages, shared by perception and policy.

For every camera frame, perception publishes, each stamped with the frame's
``header.stamp`` (docs/ros.md, "The estimate bundle"):

- ``perception/joint_states`` (sensor_msgs/JointState), ``perception/goal``
  (geometry_msgs/PointStamped) and ``perception/estimate_status``
  (diagnostic_msgs/DiagnosticArray, one status whose keys are :data:`STATUS_KEYS`: the
  estimate's confidence, its standard deviations, what was visible and the frame's
  timing in perception): the bundle the policy pairs by stamp (:data:`BUNDLE_TOPICS`);
- ``perception/goal_pose`` and ``perception/fingertip_pose``
  (geometry_msgs/PoseWithCovarianceStamped, :func:`pose_with_covariance`) beside the
  PointStamped ``perception/goal`` and ``perception/fingertip`` that rviz, the bag tools
  and the demo's window read;
- ``perception/latent`` (:data:`LATENT_TOPIC`, a learned estimator's latent state, e.g.
  SLAC's filtered (z1, z2)): a sensor_msgs/Image of one row, encoding ``32FC1``, one
  float32 per column (:func:`latent_image`, :func:`read_latent`), which the policy's
  ``slac`` controller pairs with the bundle by stamp.

No stock stamped float exists and a custom interface cannot be built pip-only; a
diagnostic_msgs/DiagnosticArray on its own topic is the standard stamped message that
names its values (``ros2 topic echo`` shows ``confidence: 0.93``), carries a level (the
estimator's own verdict: OK, WARN when unsure) and takes further keys without breaking a
reader. The latent is a float vector with a stamp: a 1 x N ``32FC1`` sensor_msgs/Image is
the standard message that carries both (``ros2 topic echo`` shows its width and bytes;
rosbag2 and the bag tools read it as any image). Only message packages are imported here,
never rclpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import math
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped
import numpy as np
import numpy.typing as npt
from sensor_msgs.msg import Image
from std_msgs.msg import Header

JOINTS_TOPIC = 'perception/joint_states'
GOAL_TOPIC = 'perception/goal'
STATUS_TOPIC = 'perception/estimate_status'
FINGERTIP_TOPIC = 'perception/fingertip'
GOAL_POSE_TOPIC = 'perception/goal_pose'
FINGERTIP_POSE_TOPIC = 'perception/fingertip_pose'
LATENT_TOPIC = 'perception/latent'
BUNDLE_TOPICS = (JOINTS_TOPIC, GOAL_TOPIC, STATUS_TOPIC)
"""What the policy needs of one frame, paired by ``header.stamp``: joints, goal, status."""

STATUS_NAME = 'perception_node: estimate'
"""``DiagnosticStatus.name`` of the per-frame status."""
UNSURE_BELOW = 0.5
"""The confidence below which an estimate is unsure: the calibration's threshold
(``reacher_perception.estimator.Estimate.confidence``); the status is then WARN."""
LOST_JOINT_DEG = 10.0
"""An estimate is wrong (lost) when a joint is further off than this, degrees: the
tolerance the confidence is calibrated against, the benchmarks count lost frames with and
the policy's dead reckoning corroborates within."""
LOST_GOAL_MM = 20.0
"""... or when the goal is further off than this, millimetres."""
STATUS_KEYS = ('confidence', 'joint_std_rad', 'fingertip_std_m', 'goal_std_m',
               'arm_visible', 'goal_visible', 'frame_to_perception_ms', 'inference_ms')
"""The per-frame status's keys, in this order: the confidence in [0, 1] ('nan': the
estimator gives none), the standard deviations (rad, m, m; 'nan' when unknown), 'true' /
'false', then the frame's timing in perception, ms: its stamp to the image callback
(node clock), and the callback's start to the estimate (conversion and inference)."""

LATENT_ENCODING = '32FC1'
"""The encoding of the latent's image (REP-104 / sensor_msgs/image_encodings: one
float32 channel)."""
MAX_LATENT_WIDTH = 4096
"""The widest latent :func:`read_latent` accepts (SLAC's is z1 + z2 = 80 floats)."""

UNKNOWN_COVARIANCE = -1.0
"""Element 0 of a covariance that is not known (the sensor_msgs/Imu convention)."""
ORIENTATION_VARIANCE = 1e6
"""rad^2 on the rotation diagonal of a point's pose: a point has no orientation."""


@dataclass(frozen=True)
class EstimateStatus:
    """The per-frame status read back (the keys of :data:`STATUS_KEYS`).

    :param confidence: in [0, 1], or nan (none given, or the key is missing).
    :param joint_std_rad: radians, or nan.
    :param fingertip_std_m: metres, or nan.
    :param goal_std_m: metres, or nan.
    :param frame_to_perception_ms: the frame's stamp to perception's callback, ms, or nan.
    :param inference_ms: perception's conversion and inference, ms, or nan.
    """

    confidence: float = math.nan
    joint_std_rad: float = math.nan
    fingertip_std_m: float = math.nan
    goal_std_m: float = math.nan
    frame_to_perception_ms: float = math.nan
    inference_ms: float = math.nan


def planar_covariance(std_m: float) -> list[float]:
    """The 6x6 row-major covariance of a point in the arena plane (x, y, z, rx, ry, rz).

    :param std_m: the standard deviation of x and of y, metres (isotropic); nan when not
        known.
    :return: 36 floats: ``std_m^2`` on x and y, 0 on z (the point lies in the plane
        z = 0), :data:`ORIENTATION_VARIANCE` on the rotations; when ``std_m`` is nan or
        negative, element 0 is :data:`UNKNOWN_COVARIANCE` and the rest 0 ("covariance
        unknown", as sensor_msgs/Imu documents it).
    """
    covariance = [0.0] * 36
    if not (math.isfinite(std_m) and std_m >= 0.0):
        covariance[0] = UNKNOWN_COVARIANCE
        return covariance
    covariance[0] = covariance[7] = float(std_m) ** 2
    covariance[21] = covariance[28] = covariance[35] = ORIENTATION_VARIANCE
    return covariance


def pose_with_covariance(xy: Sequence[float] | Any, std_m: float,
                         header: Header) -> PoseWithCovarianceStamped:
    """A point of the arena plane as a geometry_msgs/PoseWithCovarianceStamped.

    :param xy: (x, y) metres in ``header.frame_id``; z = 0, orientation the identity.
    :param std_m: its standard deviation per axis, metres, or nan (:func:`planar_covariance`).
    :param header: the frame's stamp and frame.
    :return: the message.
    """
    msg = PoseWithCovarianceStamped(header=header)
    msg.pose.pose.position.x, msg.pose.pose.position.y = float(xy[0]), float(xy[1])
    msg.pose.pose.orientation.w = 1.0
    msg.pose.covariance = planar_covariance(std_m)
    return msg


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:.6g}'
    return str(value)


def estimate_status(header: Header, values: Mapping[str, Any]) -> DiagnosticArray:
    """The per-frame status message of one estimate.

    :param header: the frame's stamp (the image's ``header.stamp``) and frame ``world``.
    :param values: a value for each of :data:`STATUS_KEYS` (a missing one is written 'nan').
    :return: a DiagnosticArray of one status named :data:`STATUS_NAME`: level OK when the
        confidence is at least :data:`UNSURE_BELOW` or not given, WARN ('unsure') below
        it; message 'confident', 'unsure' or 'no confidence'.
    """
    confidence = float(values.get('confidence', math.nan))
    if math.isnan(confidence):
        level, message = DiagnosticStatus.OK, 'no confidence'
    elif confidence < UNSURE_BELOW:
        level, message = DiagnosticStatus.WARN, 'unsure'
    else:
        level, message = DiagnosticStatus.OK, 'confident'
    status = DiagnosticStatus(
        level=level, name=STATUS_NAME, message=message, hardware_id='reacher',
        values=[KeyValue(key=key, value=_text(values.get(key, math.nan)))
                for key in STATUS_KEYS])
    return DiagnosticArray(header=header, status=[status])


def read_estimate_status(msg: DiagnosticArray) -> EstimateStatus:
    """The numbers of a per-frame status (:func:`estimate_status`).

    :param msg: the message; its first status is read, keys it lacks are nan.
    :return: the status.
    :raises ValueError: for a message with no status, or a value of a known key that is
        not a number (sizes only in the message: a value may be long).
    """
    if not msg.status:
        raise ValueError('an estimate status with no DiagnosticStatus')
    numbers: dict[str, float] = {}
    wanted = EstimateStatus.__dataclass_fields__
    for pair in msg.status[0].values:
        if pair.key in wanted:
            try:
                numbers[pair.key] = float(pair.value)
            except ValueError:
                raise ValueError(f'{pair.key} is not a number ({len(pair.value)} '
                                 'characters)') from None
    return EstimateStatus(**numbers)


def latent_image(header: Header, latent: npt.ArrayLike) -> Image:
    """A latent state as a stamped 1 x N ``32FC1`` sensor_msgs/Image.

    :param header: the frame's stamp (the image's ``header.stamp``) and frame.
    :param latent: (N,) numbers (flattened), written as little-endian float32.
    :return: the image: height 1, width N, step 4 N, ``is_bigendian`` 0.
    """
    values = np.asarray(latent, dtype='<f4').ravel()
    return Image(header=header, height=1, width=int(values.size), encoding=LATENT_ENCODING,
                 is_bigendian=0, step=4 * int(values.size), data=values.tobytes())


def read_latent(msg: Image) -> npt.NDArray[np.float32]:
    """The latent state of a :func:`latent_image` message.

    :param msg: the image.
    :return: (width,) float32.
    :raises ValueError: (sizes only in the message) for another encoding, a height other
        than 1, a width of 0 or above :data:`MAX_LATENT_WIDTH`, a step or data size that
        does not fit, or a value that is not finite.
    """
    if msg.encoding != LATENT_ENCODING or msg.height != 1:
        raise ValueError(f'a latent is a 1 x N {LATENT_ENCODING} image, got '
                         f'{msg.height} x {msg.width} {msg.encoding[:16]!r}')
    width = int(msg.width)
    if not 0 < width <= MAX_LATENT_WIDTH or msg.step != 4 * width or len(msg.data) != 4 * width:
        raise ValueError(f'latent of width {width} (at most {MAX_LATENT_WIDTH}) with step '
                         f'{msg.step} and {len(msg.data)} bytes; want 4 bytes per value')
    values = np.frombuffer(bytes(msg.data), dtype='>f4' if msg.is_bigendian else '<f4')
    if not np.all(np.isfinite(values)):
        raise ValueError('latent has values that are not finite')
    return values.astype(np.float32)
