"""The reacher's D4 symmetry: the 8 maps of the square about the shoulder.

The task and its top-down camera are invariant under the dihedral group D4 acting about
the shoulder, the origin of ``world`` and the image centre (the camera's principal point
is ``(size - 1) / 2``): the arm has no joint limits, goals are drawn symmetrically, the
goal is an axis-aligned square, actions are clipped symmetrically. An element
``g = R^k F^m`` (k in 0..3, m in 0..1; F: y -> -y, R: rotation by 90 degrees) maps

- joint angles ``(q1, q2) -> (s * q1 + k * pi / 2, s * q2)`` with ``s = (-1)^m``,
- every xy vector of ``world`` (fingertip, goal) ``v -> R^k F^m v``,
- the action (joint velocities) ``a -> s * a``,
- the camera frame: ``F`` flips its rows (world y is image up), ``R`` is ``numpy.rot90``
  (:func:`transform_frame`).

Two users: policy training maps replayed transitions by random elements
(``reacher_policy.training.symmetry``, Lin et al., RA-L 2020, arXiv:1909.10707), and the
``slac`` estimator filters the frame under several elements at once and maps the
readings back (test-time augmentation, ``PerceptionConfig.test_time_symmetries``).
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import numpy.typing as npt

Pixel = TypeVar('Pixel', bound=np.generic)

GROUP_ORDER = 8
"""Elements of D4; element ``e`` is ``R^(e % 4) F^(e // 4)``."""


def check_elements(elements: npt.ArrayLike, count: int) -> npt.NDArray[np.int64]:
    """Group elements broadcast to ``count`` ints, checked.

    :param elements: (count,) or scalar ints.
    :return: (count,) int64.
    :raises ValueError: if an element is out of [0, 8).
    """
    out = np.broadcast_to(np.asarray(elements, dtype=np.int64), (count,))
    if np.any((out < 0) | (out >= GROUP_ORDER)):
        raise ValueError(f'group elements must be in [0, {GROUP_ORDER}), got {elements!r}')
    return out


def matrices(elements: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The 2x2 matrices ``R^k F^m`` of group elements acting on xy vectors.

    :param elements: (N,) or scalar ints in [0, 8).
    :return: (N, 2, 2) float64 with entries in {-1, 0, 1} (exact).
    :raises ValueError: if an element is out of range.
    """
    flat = np.atleast_1d(np.asarray(elements, dtype=np.int64))
    elems = check_elements(flat, flat.shape[0])
    k, m = elems % 4, elems // 4
    cos = np.array([1.0, 0.0, -1.0, 0.0])[k]
    sin = np.array([0.0, 1.0, 0.0, -1.0])[k]
    sign = 1.0 - 2.0 * m
    # R^k @ diag(1, sign)
    return np.stack([np.stack([cos, -sin * sign], -1), np.stack([sin, cos * sign], -1)], -2)


def inverse(elements: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The inverse elements: rotations invert to ``R^-k``, reflections are involutions.

    :param elements: (N,) or scalar ints in [0, 8).
    :return: (N,) int64.
    """
    flat = np.atleast_1d(np.asarray(elements, dtype=np.int64))
    elems = check_elements(flat, flat.shape[0])
    k, m = elems % 4, elems // 4
    return np.where(m == 0, (-k) % 4, elems)


def action_signs(elements: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``(-1)^m`` of group elements: how each maps an action (joint velocities).

    :param elements: (N,) or scalar ints in [0, 8).
    :return: (N,) float64, +1 for rotations and -1 for reflections.
    """
    flat = np.atleast_1d(np.asarray(elements, dtype=np.int64))
    return (1.0 - 2.0 * (check_elements(flat, flat.shape[0]) // 4)).astype(np.float64)


def transform_joints(joint_positions: npt.ArrayLike, element: int) -> npt.NDArray[np.float64]:
    """Map joint angles by one group element: ``(s * q1 + k * pi / 2, s * q2)``, wrapped.

    :param joint_positions: (2,) radians.
    :param element: int in [0, 8).
    :return: (2,) float64 radians in [-pi, pi).
    """
    elem = int(check_elements(element, 1)[0])
    k, sign = elem % 4, 1.0 - 2.0 * (elem // 4)
    q = np.asarray(joint_positions, dtype=np.float64) * sign
    q = q + np.array([k * math.pi / 2.0, 0.0])
    return (q + math.pi) % (2.0 * math.pi) - math.pi


def transform_point(point: npt.ArrayLike, element: int) -> npt.NDArray[np.float64]:
    """Map an xy point of ``world`` (e.g. the goal) by one group element.

    :param point: (2,) metres.
    :param element: int in [0, 8).
    :return: (2,) float64 metres.
    """
    return matrices(element)[0] @ np.asarray(point, dtype=np.float64)


def transform_frame(image: npt.NDArray[Pixel], element: int) -> npt.NDArray[Pixel]:
    """Map a top-down camera frame by one group element: ``F`` flips rows, ``R`` is ``rot90``.

    The frame of the mapped state is the mapped frame, exact up to the renderer's
    anti-aliasing (``test/test_slac_symmetry.py`` checks every element against
    ``reacher_sim.render.ArmRenderer``, and this map against policy training's
    channels-first ``transform_images``, pixel for pixel).

    :param image: (H, W, ...) with H == W, e.g. an (H, W, 3) uint8 rgb8 frame (any dtype:
        the estimator maps an image of pixel indices once).
    :param element: int in [0, 8).
    :return: a new C-contiguous array of the same shape and dtype.
    :raises ValueError: on an element out of range or a non-square frame.
    """
    if image.shape[0] != image.shape[1]:
        raise ValueError(f'frames must be square, got {image.shape[:2]}')
    elem = int(check_elements(element, 1)[0])
    mapped = image[::-1] if elem // 4 else image
    return np.ascontiguousarray(np.rot90(mapped, elem % 4))
