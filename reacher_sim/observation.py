"""The state observation of the reacher, shared by the gymnasium env and the policy node.

Plain numpy (no gymnasium), so the policy's runtime builds the very vector a policy was
trained on from perception's estimates without loading the training stack.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from reacher_common.geometry import ArmGeometry
from reacher_common.kinematics import forward_kinematics

STATE_DIM = 11
STATE_LOW = np.array([-1.0] * 6 + [-1.5] * 2 + [-2.5] * 2 + [0.0], dtype=np.float32)
STATE_HIGH = -STATE_LOW + np.array([0.0] * 10 + [1.0], dtype=np.float32)


def state_vector(joint_positions: npt.ArrayLike, goal: npt.ArrayLike,
                 geometry: ArmGeometry) -> npt.NDArray[np.float32]:
    """The env's state observation, from joint angles and goal alone.

    The policy node builds the same vector from perception estimates, so a policy trained
    on the env runs unchanged on what the camera sees.

    ====  =========================================  =====  =====
    idx   observation                                min    max
    ====  =========================================  =====  =====
    0-1   cos, sin of the shoulder angle             -1     1
    2-3   cos, sin of the elbow angle                -1     1
    4-5   fingertip x, y / reach                     -1     1
    6-7   goal centre x, y / reach                   -1.5   1.5
    8-9   (goal - fingertip) x, y / reach            -2.5   2.5
    10    1 if the fingertip is inside the goal       0      1
    ====  =========================================  =====  =====

    :param joint_positions: (2,) radians.
    :param goal: (2,) metres in ``world``.
    :param geometry: the arm (link lengths, goal size).
    :return: (11,) float32.
    """
    q = np.asarray(joint_positions, dtype=np.float64)
    goal_xy = np.asarray(goal, dtype=np.float64)
    _, tip = forward_kinematics(q, geometry.upper_arm_length_m, geometry.forearm_length_m)
    reach = geometry.reach_m
    inside = float(np.all(np.abs(goal_xy - tip) <= geometry.goal_size_m / 2.0))
    return np.concatenate([
        np.cos(q[:1]), np.sin(q[:1]), np.cos(q[1:]), np.sin(q[1:]),
        tip / reach, goal_xy / reach, (goal_xy - tip) / reach, [inside],
    ]).astype(np.float32)
