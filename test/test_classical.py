"""Tests of the classical estimator on frames of the simulator's own renderer.

Thresholds come from measurements at 64x64 (benchmarks/perception_accuracy.py, 1000 random
states): joint-angle MAE about 0.03 deg (worst 0.2 deg), fingertip error 0.05 mm mean (worst
0.3 mm), goal error 0.12 mm mean (worst 0.55 mm). The bounds below leave a margin of four
to ten times those, and are still far inside what the policy needs (one pixel is 6.25 mm).
"""

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from reacher_common.geometry import ArmGeometry
from reacher_common.kinematics import forward_kinematics, wrap_angle
from reacher_perception.classical import ClassicalEstimator
from reacher_perception.classical_model import (
    _solve,
    capsule_coverage,
    soft_ramp,
    unmixing_matrix,
)
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import (
    Estimate,
    Estimator,
    ESTIMATORS,
    fingertip_position,
    make_estimator,
)
from reacher_sim.arm import ArmSim
from reacher_sim.config import SimConfig
from reacher_sim.render import ArmRenderer, RenderStyle

Frame = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.uint8]]


def random_frames(count: int, seed: int, sim_config: SimConfig | None = None,
                  fold: bool = False) -> list[Frame]:
    """(joint_positions, goal, image) of random states, as the env draws them."""
    sim_config = sim_config or SimConfig()
    arm, renderer = ArmSim(sim_config), ArmRenderer(sim_config.geometry)
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        arm.reset(rng)
        joints = arm.joint_positions.copy()
        if fold:
            # The forearm within 15 degrees of lying on the upper arm.
            joints[1] = wrap_angle(math.pi + rng.uniform(-0.26, 0.26))
        frames.append((joints, arm.goal.copy(), renderer.render(joints, arm.goal)))
    return frames


def errors(estimator: ClassicalEstimator, frames: list[Frame], noise: float = 0.0,
           seed: int = 0) -> dict[str, npt.NDArray[np.float64]]:
    """Per-frame joint errors (deg, (N, 2)), fingertip and goal errors (mm, (N,))."""
    rng = np.random.default_rng(seed)
    joint, tip, goal = [], [], []
    for joints, goal_xy, image in frames:
        if noise:
            noisy = image + rng.normal(0.0, noise * 255.0, image.shape)
            image = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
        estimate = estimator.estimate(image)
        assert estimate.arm_visible and estimate.goal_visible
        _, true_tip = forward_kinematics(joints, 0.1, 0.1)
        joint.append(np.degrees(np.abs(wrap_angle(estimate.joint_positions - joints))))
        tip.append(1e3 * np.linalg.norm(estimate.fingertip - true_tip))
        goal.append(1e3 * np.linalg.norm(estimate.goal - goal_xy))
    return {'joint_deg': np.array(joint), 'fingertip_mm': np.array(tip),
            'goal_mm': np.array(goal)}


@pytest.fixture
def estimator() -> ClassicalEstimator:
    return ClassicalEstimator(PerceptionConfig())


def test_registered_and_made_by_name() -> None:
    assert ESTIMATORS['classical'] is ClassicalEstimator
    made = make_estimator(PerceptionConfig(estimator='classical'))
    assert isinstance(made, ClassicalEstimator)
    assert isinstance(made, Estimator)


def test_accuracy_on_random_states(estimator: ClassicalEstimator) -> None:
    result = errors(estimator, random_frames(200, seed=1))
    assert result['joint_deg'].mean() < 0.2
    assert result['joint_deg'].max() < 1.0
    assert result['fingertip_mm'].mean() < 0.5
    assert result['fingertip_mm'].max() < 2.0
    assert result['goal_mm'].mean() < 0.5
    assert result['goal_mm'].max() < 2.0


def test_fold_over_poses(estimator: ClassicalEstimator) -> None:
    # The forearm hides most of the upper arm: the elbow comes from the forearm alone.
    result = errors(estimator, random_frames(100, seed=2, fold=True))
    assert result['joint_deg'].mean() < 0.3
    assert result['joint_deg'].max() < 1.5
    assert result['fingertip_mm'].max() < 2.0


@pytest.mark.parametrize('joints', [(0.0, 0.0), (math.pi / 2, math.pi), (-math.pi, -math.pi / 2),
                                    (math.pi / 4, math.pi - 1e-3), (-3 * math.pi / 4, 0.0)])
def test_axis_aligned_and_degenerate_poses(estimator: ClassicalEstimator,
                                           joints: tuple[float, float]) -> None:
    image = ArmRenderer(ArmGeometry()).render(joints, (0.1, 0.1))
    estimate = estimator.estimate(image)
    error = np.abs(wrap_angle(estimate.joint_positions - np.array(joints)))
    assert np.degrees(error).max() < 0.5


@pytest.mark.parametrize('goal', [(0.19, 0.0), (0.0, -0.19), (-0.18, 0.05), (0.005, -0.01)])
def test_goal_cut_by_the_image_or_under_the_hub(estimator: ClassicalEstimator,
                                                goal: tuple[float, float]) -> None:
    # (0.19, 0) pokes 1 cm out of the 0.4 m arena; (0.005, -0.01) lies on the shoulder.
    image = ArmRenderer(ArmGeometry()).render((2.0, 1.0), goal)
    estimate = estimator.estimate(image)
    assert estimate.goal_visible
    assert 1e3 * np.linalg.norm(estimate.goal - np.array(goal)) < 1.0


def test_goal_under_the_arm(estimator: ClassicalEstimator) -> None:
    # The forearm crosses the goal's middle: the goal's alpha has a gap the model expects.
    joints = np.array([0.0, math.pi / 2])
    _, tip = forward_kinematics(joints, 0.1, 0.1)
    goal = tip - np.array([0.0, 0.05])
    estimate = estimator.estimate(ArmRenderer(ArmGeometry()).render(joints, goal))
    assert 1e3 * np.linalg.norm(estimate.goal - goal) < 1.0
    assert np.degrees(np.abs(wrap_angle(estimate.joint_positions - joints))).max() < 0.5


@pytest.mark.parametrize('noise, joint_mae_deg, goal_mm', [(5 / 255, 0.3, 1.0),
                                                            (15 / 255, 0.6, 2.0)])
def test_pixel_noise(estimator: ClassicalEstimator, noise: float, joint_mae_deg: float,
                     goal_mm: float) -> None:
    # Measured: sigma 5/255 gives 0.04 deg and 0.2 mm, sigma 15/255 0.09 deg and 0.3 mm.
    result = errors(estimator, random_frames(100, seed=3), noise=noise, seed=4)
    assert result['joint_deg'].mean() < joint_mae_deg
    assert result['joint_deg'].max() < 5 * joint_mae_deg
    assert result['goal_mm'].mean() < goal_mm
    assert result['goal_mm'].max() < 4 * goal_mm


def test_other_image_size() -> None:
    config = PerceptionConfig(geometry=ArmGeometry(image_size=128))
    result = errors(ClassicalEstimator(config),
                    random_frames(40, 5, SimConfig(geometry=config.geometry)))
    assert result['joint_deg'].mean() < 0.1
    assert result['goal_mm'].mean() < 0.3


def test_missing_goal_keeps_the_previous_one(estimator: ClassicalEstimator) -> None:
    renderer = ArmRenderer(ArmGeometry())
    joints, goal = np.array([0.5, -1.0]), np.array([-0.1, 0.08])
    seen = estimator.estimate(renderer.render(joints, goal))
    assert seen.goal_visible
    # The goal out of view, and the arm moved: the goal is remembered, the arm is new.
    moved = np.array([1.5, 0.5])
    missing = estimator.estimate(renderer.render(moved, (5.0, 5.0)))
    assert not missing.goal_visible and missing.arm_visible
    np.testing.assert_array_equal(missing.goal, seen.goal)
    assert np.degrees(np.abs(wrap_angle(missing.joint_positions - moved))).max() < 0.5


def test_occluded_goal_keeps_the_previous_one(estimator: ClassicalEstimator) -> None:
    renderer = ArmRenderer(ArmGeometry())
    goal = np.array([0.12, -0.1])
    image = renderer.render((0.5, -1.0), goal)
    seen = estimator.estimate(image)
    # Something of the background's colour covers the goal entirely.
    (u, v), half = renderer.camera.world_to_pixel(goal).round().astype(int), 6
    covered = image.copy()
    covered[v - half:v + half + 1, u - half:u + half + 1] = RenderStyle().background
    hidden = estimator.estimate(covered)
    assert not hidden.goal_visible
    np.testing.assert_array_equal(hidden.goal, seen.goal)


def test_blank_image_sees_nothing_and_keeps_the_last_estimate(
        estimator: ClassicalEstimator) -> None:
    seen = estimator.estimate(ArmRenderer(ArmGeometry()).render((1.0, 1.0), (0.1, 0.0)))
    blank = np.empty((64, 64, 3), dtype=np.uint8)
    blank[:] = RenderStyle().background
    for image in (blank, np.zeros_like(blank)):
        estimate = estimator.estimate(image)
        assert not estimate.arm_visible and not estimate.goal_visible
        np.testing.assert_array_equal(estimate.joint_positions, seen.joint_positions)
        np.testing.assert_array_equal(estimate.fingertip, seen.fingertip)
        np.testing.assert_array_equal(estimate.goal, seen.goal)


def test_reset_forgets(estimator: ClassicalEstimator) -> None:
    estimator.estimate(ArmRenderer(ArmGeometry()).render((1.0, 1.0), (0.1, 0.0)))
    estimator.reset()
    blank = np.zeros((64, 64, 3), dtype=np.uint8)
    estimate = estimator.estimate(blank)
    np.testing.assert_array_equal(estimate.joint_positions, np.zeros(2))
    np.testing.assert_array_equal(estimate.goal, np.zeros(2))
    np.testing.assert_allclose(estimate.fingertip, [0.2, 0.0])


def test_estimate_types_and_determinism(estimator: ClassicalEstimator) -> None:
    image = random_frames(1, seed=6)[0][2]
    first, second = estimator.estimate(image), estimator.estimate(image.copy())
    assert isinstance(first, Estimate) and first.latent is None
    for name in ('joint_positions', 'fingertip', 'goal'):
        value = getattr(first, name)
        assert value.shape == (2,) and value.dtype == np.float64
        np.testing.assert_array_equal(value, getattr(second, name))
    assert np.all((first.joint_positions >= -math.pi) & (first.joint_positions < math.pi))
    # The estimate owns its arrays: changing one does not change the estimator's memory.
    first.goal[:] = 9.0
    assert not np.any(estimator.estimate(np.zeros_like(image)).goal == 9.0)


@pytest.mark.parametrize('image, match', [
    (np.zeros((32, 32, 3), np.uint8), r'expected a \(64, 64, 3\) uint8 rgb8 image, '
                                      r'got \(32, 32, 3\) uint8'),
    (np.zeros((64, 64, 3), np.float32), r'got \(64, 64, 3\) float32'),
    (np.zeros((64, 64), np.uint8), r'got \(64, 64\) uint8'),
    (np.zeros((64, 64, 4), np.uint8), r'got \(64, 64, 4\) uint8'),
])
def test_wrong_image_raises(estimator: ClassicalEstimator, image: npt.NDArray[Any],
                            match: str) -> None:
    with pytest.raises(ValueError, match=match):
        estimator.estimate(image)


def test_bad_max_iterations_raises() -> None:
    with pytest.raises(ValueError, match='max_iterations=0'):
        ClassicalEstimator(PerceptionConfig(), max_iterations=0)


def test_unmixing_recovers_pure_and_blended_colours() -> None:
    style = RenderStyle()
    matrix = unmixing_matrix(style)
    colours = np.array([style.background, style.goal, style.upper_arm, style.forearm], float)
    weights = np.array([0.1, 0.2, 0.3, 0.4])
    blended = weights @ colours
    np.testing.assert_allclose(matrix @ np.append(blended, 1.0), weights[1:], atol=1e-5)
    for index, colour in enumerate(colours[1:]):
        np.testing.assert_allclose(matrix @ np.append(colour, 1.0), np.eye(3)[index],
                                   atol=1e-5)


def test_unmixing_rejects_inseparable_colours() -> None:
    grey = RenderStyle(goal=(100, 100, 100), upper_arm=(50, 50, 50), forearm=(150, 150, 150))
    with pytest.raises(ValueError, match='cannot be told apart'):
        unmixing_matrix(grey)


def test_soft_ramp_is_a_smooth_clip() -> None:
    raw = np.array([-1.0, 0.5, 2.0])
    coverage, _ = soft_ramp(raw)
    np.testing.assert_allclose(coverage, [0.0, 0.5, 1.0])
    grid = np.linspace(-1.0, 2.0, 301)
    coverage, slope = soft_ramp(grid)
    numeric = np.gradient(coverage, grid)
    np.testing.assert_allclose(slope, numeric, atol=2e-2)
    assert np.all(np.diff(coverage) >= 0.0)


def test_capsule_coverage_inside_and_outside() -> None:
    x, y = np.array([5.0, 5.0, 5.0, -3.0]), np.array([0.0, 3.0, 0.9, 0.0])
    starts, ends = np.array([[0.0, 0.0], [0.0, -5.0]]), np.array([[10.0, 0.0], [0.0, 5.0]])
    coverage, _, along, normal_x, normal_y = capsule_coverage(x, y, starts, ends, 1.0)
    assert coverage.shape == (2, 4)
    # Along the x axis, then along the y axis.
    np.testing.assert_allclose(coverage[0, :2], [1.0, 0.0])
    assert 0.0 < coverage[0, 2] < 1.0
    np.testing.assert_allclose(along[0], [0.5, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(normal_x[0, 3], -1.0)
    np.testing.assert_allclose(normal_y[0, 1], 1.0)
    np.testing.assert_allclose(coverage[1], [0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(along[1], [0.5, 0.8, 0.59, 0.5])


@pytest.mark.parametrize('params', [(0.3, 1.2, 1.1), (-2.0, 3.0, 1.2), (1.0, -0.4, 0.9)])
def test_arm_model_jacobian_matches_finite_differences(estimator: ClassicalEstimator,
                                                       params: tuple[float, float, float]
                                                       ) -> None:
    rng = np.random.default_rng(7)
    x, y = rng.uniform(-32, 32, 2000), rng.uniform(-32, 32, 2000)
    observed = rng.uniform(0, 1, 4000)
    point = np.array(params)
    _, jacobian = estimator._arm_model(point, x, y, observed)
    step = 1e-6
    for column in range(3):
        shift = np.eye(3)[column] * step
        plus, _ = estimator._arm_model(point + shift, x, y, observed)
        minus, _ = estimator._arm_model(point - shift, x, y, observed)
        numeric = (plus - minus) / (2 * step)
        # Pixels where a segment's closest point switches (a kink) differ; all others agree.
        close = np.abs(jacobian[:, column] - numeric) < 1e-4
        assert close.mean() > 0.99


@pytest.mark.parametrize('size', [2, 3, 4])
def test_normal_equation_solve_matches_lapack(size: int) -> None:
    rng = np.random.default_rng(size)
    for _ in range(200):
        jacobian = rng.normal(size=(50, size)) * rng.uniform(0.01, 100.0, size)
        normal = jacobian.T @ jacobian + 1e-9 * np.eye(size)
        gradient = rng.normal(size=size)
        expected = np.linalg.solve(normal, gradient)
        np.testing.assert_allclose(_solve(normal, gradient), expected, rtol=1e-9,
                                   atol=1e-12 * float(np.abs(expected).max()))


def test_fingertip_position_is_forward_kinematics() -> None:
    for joints in np.random.default_rng(4).uniform(-np.pi, np.pi, (100, 2)):
        _, expected = forward_kinematics(joints, 0.1, 0.12)
        np.testing.assert_allclose(fingertip_position(*joints.tolist(), 0.1, 0.12), expected,
                                   rtol=0.0, atol=1e-15)


def test_confidence_counts_match_a_float_reference(estimator: ClassicalEstimator) -> None:
    # The counts by OpenCV (uint8 differences, float32 squares) against plain numpy.
    rng = np.random.default_rng(9)
    size = estimator.config.geometry.image_size
    hub_free = estimator._hub_free_mask.reshape(size, size)
    for limit in (30.0, 40.0, 60.0):
        a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        b = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        b[::2] = a[::2] + rng.integers(-40, 40, (size // 2, size, 3)).astype(np.uint8)
        difference = a.astype(np.float64) - b.astype(np.float64)
        expected = int(np.count_nonzero(((difference ** 2).sum(axis=2) > limit ** 2) & hub_free))
        got = estimator._count_far(np.abs(difference).astype(np.uint8), limit)
        assert got == expected
        assert estimator._count_far(difference.astype(np.float32), limit) == expected


def test_confidence_is_high_on_clean_frames_and_falls_when_the_arm_is_covered(
        estimator: ClassicalEstimator) -> None:
    renderer = ArmRenderer(ArmGeometry())
    joints, goal = np.array([0.7, 1.2]), np.array([-0.08, 0.1])
    image = renderer.render(joints, goal)
    assert estimator.estimate(image).confidence > 0.9
    elbow, tip = forward_kinematics(joints, 0.1, 0.1)
    centre = renderer.camera.world_to_pixel(0.5 * (elbow + tip)).round().astype(int)
    covered = image.copy()
    covered[centre[1] - 6:centre[1] + 7, centre[0] - 6:centre[0] + 7] = 128
    assert estimator.estimate(covered).confidence < 0.5


def test_confidence_is_low_where_the_fit_cannot_explain_the_frame(
        estimator: ClassicalEstimator) -> None:
    from reacher_sim.scene import Scene

    renderer = ArmRenderer(ArmGeometry())
    renderer.set_scene(Scene(families=('background',), background=(200, 40, 160)))
    frame = renderer.render((0.3, -1.4), (0.12, 0.02))
    # Read as it comes, a new table is no scene the unmixing knows: the fit says so.
    raw = ClassicalEstimator(PerceptionConfig(normalize_background=False))
    assert 0.0 <= raw.estimate(frame).confidence < 0.5
    # With the table repainted (the default) the same frame is read, and sure.
    estimate = estimator.estimate(frame)
    assert estimate.confidence > 0.5
    np.testing.assert_allclose(estimate.joint_positions, (0.3, -1.4), atol=0.01)
    blank = np.zeros((64, 64, 3), np.uint8)
    assert estimator.estimate(blank).confidence == 0.0  # nothing seen: no confidence
