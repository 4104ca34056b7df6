"""Forward and inverse kinematics of the 2-link planar arm.

Frame ``world`` (REP-103/105): x right, y up in the arena plane, origin at the shoulder.
Joint angles are radians, counter-clockwise positive; the elbow angle is relative to the
upper arm, so the forearm's absolute angle is ``q1 + q2``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def wrap_angle(angle: FloatArray | float) -> FloatArray:
    """Wrap angles to [-pi, pi).

    :param angle: radians, any shape.
    :return: float64 array of the same shape, radians in [-pi, pi).
    """
    return (np.asarray(angle, dtype=np.float64) + np.pi) % (2.0 * np.pi) - np.pi


def forward_kinematics(joint_positions: npt.ArrayLike, upper_arm_length: float,
                       forearm_length: float) -> tuple[FloatArray, FloatArray]:
    """Elbow and fingertip positions of the arm.

    :param joint_positions: (..., 2) radians, (shoulder, elbow).
    :param upper_arm_length: metres.
    :param forearm_length: metres.
    :return: ``(elbow, fingertip)``, each (..., 2) float64 metres in ``world``.
    """
    q = np.asarray(joint_positions, dtype=np.float64)
    q1, q12 = q[..., 0], q[..., 0] + q[..., 1]
    elbow = np.stack([np.cos(q1), np.sin(q1)], axis=-1) * upper_arm_length
    fingertip = elbow + np.stack([np.cos(q12), np.sin(q12)], axis=-1) * forearm_length
    return elbow, fingertip


def inverse_kinematics(target: npt.ArrayLike, upper_arm_length: float, forearm_length: float,
                       current: npt.ArrayLike | None = None) -> FloatArray:
    """Joint angles that put the fingertip on ``target`` (analytic 2-link solution).

    Of the two elbow solutions, the one nearest ``current`` (in wrapped joint distance)
    is returned; with no ``current``, the elbow-down (q2 >= 0) one. A target outside the
    reachable annulus is projected onto its nearest boundary, so the arm points at it.

    :param target: (2,) metres in ``world``.
    :param upper_arm_length: metres.
    :param forearm_length: metres.
    :param current: (2,) radians, the present joint angles, or None.
    :return: (2,) float64 radians, each wrapped to [-pi, pi).
    """
    x, y = np.asarray(target, dtype=np.float64)
    l1, l2 = upper_arm_length, forearm_length
    radius = math.hypot(x, y)
    r_min, r_max = abs(l1 - l2), l1 + l2
    if radius < 1e-12:
        # Any direction is as good: keep the shoulder where it is.
        base = 0.0 if current is None else float(np.asarray(current)[0])
        x, y, radius = math.cos(base) * r_min, math.sin(base) * r_min, r_min
    clamped = min(max(radius, r_min), r_max)
    if clamped != radius:
        x, y, radius = x * clamped / radius, y * clamped / radius, clamped
    cos_q2 = (radius * radius - l1 * l1 - l2 * l2) / (2.0 * l1 * l2)
    cos_q2 = min(1.0, max(-1.0, cos_q2))
    solutions = []
    for sign in (1.0, -1.0):
        q2 = sign * math.acos(cos_q2)
        q1 = math.atan2(y, x) - math.atan2(l2 * math.sin(q2), l1 + l2 * math.cos(q2))
        solutions.append(wrap_angle(np.array([q1, q2])))
    if current is None:
        return solutions[0]
    now = np.asarray(current, dtype=np.float64)
    costs = [float(np.abs(wrap_angle(s - now)).sum()) for s in solutions]
    return solutions[int(np.argmin(costs))]
