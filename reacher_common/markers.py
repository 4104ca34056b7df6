"""visualization_msgs markers of the arm and the goal, in the ``world`` frame, for rviz2.

The simulator draws the true arm, goal and fingertip trail; perception draws its estimate
as a translucent ghost under its own namespace, on the same /visualization/markers topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
import numpy as np
import numpy.typing as npt
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker

from reacher_common.kinematics import forward_kinematics
from reacher_common.ros_utils import WORLD_FRAME

RGBA = tuple[float, float, float, float]


def _colour(rgba: RGBA) -> ColorRGBA:
    return ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])


def _points(xy: Iterable[Sequence[float]] | npt.NDArray[np.float64], z: float = 0.0
            ) -> list[Point]:
    return [Point(x=float(p[0]), y=float(p[1]), z=z) for p in xy]


def arm_marker(namespace: str, joint_positions: npt.ArrayLike, link_lengths: tuple[float, float],
               stamp: Time, rgba: RGBA, width: float = 0.012, z: float = 0.0) -> Marker:
    """The arm as a line strip shoulder -> elbow -> fingertip.

    :param namespace: marker namespace, e.g. 'sim/arm' or 'perception/arm'.
    :param joint_positions: (2,) radians.
    :param link_lengths: (upper arm, forearm), metres.
    :param stamp: the stamp of the state drawn.
    :param rgba: colour, each in [0, 1].
    :param width: line width, metres.
    :param z: height over the arena, metres (draws ghosts above the truth).
    :return: a LINE_STRIP marker in ``world``.
    """
    elbow, tip = forward_kinematics(joint_positions, *link_lengths)
    return Marker(header=Header(stamp=stamp, frame_id=WORLD_FRAME), ns=namespace, id=0,
                  type=Marker.LINE_STRIP, action=Marker.ADD,
                  points=_points(np.stack([np.zeros(2), elbow, tip]), z),
                  scale=_vector(width, 0.0, 0.0), color=_colour(rgba))


def goal_marker(namespace: str, goal: npt.ArrayLike, size: float, stamp: Time, rgba: RGBA,
                wireframe: bool = False) -> Marker:
    """The goal square: a flat cube, or its outline when ``wireframe``.

    :param goal: (2,) metres, the centre.
    :param size: side, metres.
    """
    centre = np.asarray(goal, dtype=np.float64)
    header = Header(stamp=stamp, frame_id=WORLD_FRAME)
    if wireframe:
        half = size / 2.0
        corners = centre + np.array([(-half, -half), (half, -half), (half, half),
                                     (-half, half), (-half, -half)])
        return Marker(header=header, ns=namespace, id=0, type=Marker.LINE_STRIP,
                      action=Marker.ADD, points=_points(corners, 0.002),
                      scale=_vector(0.002, 0.0, 0.0), color=_colour(rgba))
    marker = Marker(header=header, ns=namespace, id=0, type=Marker.CUBE, action=Marker.ADD,
                    scale=_vector(size, size, 0.002), color=_colour(rgba))
    marker.pose.position.x, marker.pose.position.y = float(centre[0]), float(centre[1])
    marker.pose.position.z = -0.001
    marker.pose.orientation.w = 1.0
    return marker


def trail_marker(namespace: str, points: Sequence[npt.ArrayLike], stamp: Time, rgba: RGBA,
                 width: float = 0.003) -> Marker:
    """A line strip through recent fingertip positions ((2,) metres each)."""
    return Marker(header=Header(stamp=stamp, frame_id=WORLD_FRAME), ns=namespace, id=0,
                  type=Marker.LINE_STRIP, action=Marker.ADD,
                  points=_points(np.asarray(points, dtype=np.float64).reshape(-1, 2), 0.001),
                  scale=_vector(width, 0.0, 0.0), color=_colour(rgba))


def _vector(x: float, y: float, z: float) -> object:
    from geometry_msgs.msg import Vector3
    return Vector3(x=x, y=y, z=z)


LINK_FRAMES = ('upper_arm', 'forearm', 'fingertip')
"""Child frames of the arm's transforms: world -> upper_arm -> forearm -> fingertip."""


def link_transforms(stamp: Time, joint_positions: npt.ArrayLike,
                    link_lengths: tuple[float, float]) -> list[object]:
    """geometry_msgs/TransformStamped of each link frame (REP-105 chain from ``world``).

    ``upper_arm`` sits at the shoulder rotated by q1, ``forearm`` at the elbow (x = l1 in
    ``upper_arm``) rotated by q2, ``fingertip`` at x = l2 in ``forearm``.

    :param stamp: the stamp of the state.
    :param joint_positions: (2,) radians.
    :param link_lengths: (upper arm, forearm), metres.
    :return: three TransformStamped messages.
    """
    from geometry_msgs.msg import TransformStamped

    q = np.asarray(joint_positions, dtype=np.float64)
    chain = [(WORLD_FRAME, LINK_FRAMES[0], 0.0, float(q[0])),
             (LINK_FRAMES[0], LINK_FRAMES[1], link_lengths[0], float(q[1])),
             (LINK_FRAMES[1], LINK_FRAMES[2], link_lengths[1], 0.0)]
    transforms = []
    for parent, child, offset, angle in chain:
        transform = TransformStamped(header=Header(stamp=stamp, frame_id=parent),
                                     child_frame_id=child)
        transform.transform.translation.x = offset
        # Rotation about z by ``angle``: quaternion (0, 0, sin(a/2), cos(a/2)).
        transform.transform.rotation.z = float(np.sin(angle / 2.0))
        transform.transform.rotation.w = float(np.cos(angle / 2.0))
        transforms.append(transform)
    return transforms
