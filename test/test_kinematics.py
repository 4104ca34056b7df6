"""Forward and inverse kinematics of the 2-link arm, and angle wrapping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reacher_common.kinematics import forward_kinematics, inverse_kinematics, wrap_angle

L1, L2 = 0.1, 0.1


@pytest.mark.parametrize(('joints', 'elbow', 'fingertip'), [
    ((0.0, 0.0), (0.1, 0.0), (0.2, 0.0)),
    ((math.pi / 2, 0.0), (0.0, 0.1), (0.0, 0.2)),
    ((0.0, math.pi / 2), (0.1, 0.0), (0.1, 0.1)),
    ((math.pi, 0.0), (-0.1, 0.0), (-0.2, 0.0)),
    ((math.pi / 2, -math.pi / 2), (0.0, 0.1), (0.1, 0.1)),
    ((0.0, math.pi), (0.1, 0.0), (0.0, 0.0)),
])
def test_forward_kinematics_known_values(joints: tuple[float, float],
                                         elbow: tuple[float, float],
                                         fingertip: tuple[float, float]) -> None:
    got_elbow, got_fingertip = forward_kinematics(joints, L1, L2)
    np.testing.assert_allclose(got_elbow, elbow, atol=1e-12)
    np.testing.assert_allclose(got_fingertip, fingertip, atol=1e-12)


def test_forward_kinematics_batches_and_uses_link_lengths() -> None:
    joints = np.zeros((3, 4, 2))
    joints[..., 1] = math.pi / 2
    elbow, fingertip = forward_kinematics(joints, 0.12, 0.05)
    assert elbow.shape == fingertip.shape == (3, 4, 2)
    np.testing.assert_allclose(fingertip[1, 2], [0.12, 0.05], atol=1e-12)


@pytest.mark.parametrize(('upper', 'fore'), [(0.1, 0.1), (0.12, 0.07), (0.05, 0.15)])
def test_inverse_kinematics_round_trip(upper: float, fore: float) -> None:
    rng = np.random.default_rng(0)
    r_min, r_max = abs(upper - fore), upper + fore
    for _ in range(200):
        radius = rng.uniform(r_min + 1e-6, r_max - 1e-6)
        angle = rng.uniform(-math.pi, math.pi)
        target = radius * np.array([math.cos(angle), math.sin(angle)])
        current = rng.uniform(-math.pi, math.pi, size=2)
        for start in (None, current):
            joints = inverse_kinematics(target, upper, fore, current=start)
            assert joints.shape == (2,) and joints.dtype == np.float64
            assert np.all((joints >= -math.pi) & (joints < math.pi))
            np.testing.assert_allclose(forward_kinematics(joints, upper, fore)[1], target,
                                       atol=1e-9)


@pytest.mark.parametrize('target', [(0.5, 0.0), (0.3, -0.4), (-1.0, 2.0)])
def test_unreachable_far_target_projects_to_outer_boundary(
        target: tuple[float, float]) -> None:
    joints = inverse_kinematics(target, L1, L2)
    fingertip = forward_kinematics(joints, L1, L2)[1]
    direction = np.asarray(target) / np.linalg.norm(target)
    np.testing.assert_allclose(fingertip, (L1 + L2) * direction, atol=1e-9)


def test_unreachable_near_target_projects_to_inner_boundary() -> None:
    upper, fore = 0.12, 0.07
    target = np.array([0.01, -0.02])  # inside the inner radius 0.05
    fingertip = forward_kinematics(inverse_kinematics(target, upper, fore), upper, fore)[1]
    direction = target / np.linalg.norm(target)
    np.testing.assert_allclose(fingertip, (upper - fore) * direction, atol=1e-9)


def test_nearest_elbow_solution_is_chosen() -> None:
    target = np.array([0.1, 0.1])
    elbow_down = np.array([0.0, math.pi / 2])  # q2 > 0
    elbow_up = np.array([math.pi / 2, -math.pi / 2])  # q2 < 0
    for solution in (elbow_down, elbow_up):
        np.testing.assert_allclose(forward_kinematics(solution, L1, L2)[1], target,
                                   atol=1e-12)
    np.testing.assert_allclose(inverse_kinematics(target, L1, L2), elbow_down, atol=1e-12)
    near_up = elbow_up + np.array([0.3, -0.2])
    np.testing.assert_allclose(inverse_kinematics(target, L1, L2, current=near_up),
                               elbow_up, atol=1e-12)
    near_down = elbow_down + np.array([-0.3, 0.2])
    np.testing.assert_allclose(inverse_kinematics(target, L1, L2, current=near_down),
                               elbow_down, atol=1e-12)


def test_nearest_elbow_solution_uses_wrapped_distance() -> None:
    # Elbow-up solution (-pi + 0.2, ...) is near current (pi - 0.1, ...) across the wrap.
    target = forward_kinematics([-math.pi + 0.2, -1.0], L1, L2)[1]
    joints = inverse_kinematics(target, L1, L2, current=[math.pi - 0.1, -1.1])
    np.testing.assert_allclose(joints, [-math.pi + 0.2, -1.0], atol=1e-9)


@pytest.mark.parametrize(('angle', 'wrapped'), [
    (0.0, 0.0),
    (math.pi, -math.pi),
    (-math.pi, -math.pi),
    (3 * math.pi, -math.pi),
    (2 * math.pi + 0.5, 0.5),
    (-2 * math.pi - 0.5, -0.5),
    (math.pi - 0.1, math.pi - 0.1),
])
def test_wrap_angle_values(angle: float, wrapped: float) -> None:
    assert float(wrap_angle(angle)) == pytest.approx(wrapped, abs=1e-12)


def test_wrap_angle_arrays() -> None:
    angles = np.random.default_rng(1).uniform(-50.0, 50.0, size=(5, 7))
    wrapped = wrap_angle(angles)
    assert wrapped.shape == angles.shape and wrapped.dtype == np.float64
    assert np.all((wrapped >= -math.pi) & (wrapped < math.pi))
    np.testing.assert_allclose(np.cos(wrapped), np.cos(angles), atol=1e-9)
    np.testing.assert_allclose(np.sin(wrapped), np.sin(angles), atol=1e-9)
