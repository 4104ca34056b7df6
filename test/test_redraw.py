"""The redraw check on rendered frames: right estimates are shown, wrong ones are not."""

import numpy as np
import pytest

from reacher_common.geometry import ArmGeometry
from reacher_perception.background import BackgroundNormalizer
from reacher_perception.redraw import RedrawCheck, support
from reacher_sim.render import ArmRenderer, RenderStyle
from reacher_sim.scene import Scene

GEOMETRY = ArmGeometry()
JOINTS, GOAL = np.array([0.7, 1.2]), np.array([0.08, -0.05])


@pytest.fixture(scope='module')
def check():
    return RedrawCheck(GEOMETRY)


@pytest.fixture(scope='module')
def repainted():
    renderer = ArmRenderer(GEOMETRY)
    renderer.set_scene(Scene(families=('background',), background=(150, 60, 200)))
    normalize = BackgroundNormalizer(GEOMETRY.image_size, RenderStyle().background)
    return normalize(renderer.render(JOINTS, GOAL))


def test_a_right_estimate_is_shown(check, repainted):
    assert check(ArmRenderer(GEOMETRY).render(JOINTS, GOAL), JOINTS, GOAL) == 1.0
    assert check(repainted, JOINTS, GOAL) > 0.9


@pytest.mark.parametrize('joints, goal', [
    (JOINTS + [0.8, 0.0], GOAL),        # the shoulder 46 deg off
    (JOINTS + [0.0, -1.0], GOAL),       # the elbow 57 deg off
    (JOINTS, GOAL + [-0.1, 0.12]),      # the goal 156 mm off
])
def test_a_wrong_estimate_is_not(check, repainted, joints, goal):
    share = check(repainted, joints, goal)
    assert share < check(repainted, JOINTS, GOAL) - 0.1, share


def test_a_covered_arm_has_no_support(check):
    renderer = ArmRenderer(GEOMETRY)
    frame = renderer.render(JOINTS, GOAL)
    frame[:] = RenderStyle().background  # the arm and goal covered by the table's colour
    assert support(check(frame, JOINTS, GOAL)) == 0.0


def test_support_is_a_linear_ramp():
    assert [support(s) for s in (0.0, 0.6, 0.7, 0.8, 1.0)] == pytest.approx(
        [0.0, 0.0, 0.5, 1.0, 1.0])
