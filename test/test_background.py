"""Background normalisation on rendered frames: the table repainted, the arm and goal kept."""

from dataclasses import replace

import numpy as np
import pytest

from reacher_common.geometry import ArmGeometry
from reacher_perception.background import BackgroundNormalizer
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import make_estimator
from reacher_sim.render import ArmRenderer, RenderStyle
from reacher_sim.scene import Scene, SceneConfig

GEOMETRY = ArmGeometry()
POSES = [(np.array([0.7, 1.2]), np.array([0.08, -0.05])),
         (np.array([-2.0, 0.3]), np.array([-0.1, 0.1])),
         (np.array([2.9, -1.9]), np.array([0.02, 0.15]))]


@pytest.fixture(scope='module')
def normalize():
    return BackgroundNormalizer(GEOMETRY.image_size, RenderStyle().background)


def test_a_clean_frame_is_left_as_it_is(normalize):
    renderer = ArmRenderer(GEOMETRY)
    for joints, goal in POSES:
        frame = renderer.render(joints, goal)
        assert np.array_equal(normalize(frame), frame)


@pytest.mark.parametrize('family', ['background', 'texture', 'lighting'])
def test_a_changed_table_comes_back_to_the_clean_one(normalize, family):
    renderer = ArmRenderer(GEOMETRY)
    for seed, (joints, goal) in enumerate(POSES):
        clean = renderer.render(joints, goal).astype(np.int16)
        renderer.set_scene(SceneConfig(name=family).sample(np.random.default_rng(seed),
                                                           renderer.avoid_colours))
        frame = renderer.render(joints, goal)
        renderer.set_scene(None)
        before = np.abs(frame - clean).mean()
        after = np.abs(normalize(frame) - clean).mean()
        # Mean absolute difference from the clean frame, 0-255 units: a new table is 26-67
        # before and under 1 after; a texture or uneven light leaves a few units.
        assert after < 5.0 and after < before / 2, (family, seed, before, after)


def test_the_arm_and_the_goal_keep_their_colours(normalize):
    # A table the scenes draw (100 RGB units from every object colour, the least they keep).
    renderer = ArmRenderer(GEOMETRY)
    joints, goal = POSES[0]
    clean = renderer.render(joints, goal)
    renderer.set_scene(Scene(families=('background',), background=(206, 5, 206)))
    frame = renderer.render(joints, goal)
    # The pixels drawn wholly in an object's colour (far from the clean table) are kept.
    objects = np.abs(clean.astype(np.int16) - RenderStyle().background).sum(axis=2) > 300
    assert objects.sum() > 20
    assert np.array_equal(normalize(frame)[objects], frame[objects])


def test_the_classical_estimator_reads_a_new_table_only_normalised():
    renderer = ArmRenderer(GEOMETRY)
    config = PerceptionConfig(estimator='classical', geometry=GEOMETRY)
    normalised = make_estimator(config)
    raw = make_estimator(replace(config, normalize_background=False))
    worst = {'raw': 0.0, 'normalised': 0.0}
    for seed in range(6):
        renderer.set_scene(SceneConfig(name='background').sample(np.random.default_rng(seed),
                                                                 renderer.avoid_colours))
        for joints, goal in POSES:
            frame = renderer.render(joints, goal)
            for name, estimator in (('raw', raw), ('normalised', normalised)):
                estimator.reset()
                error = np.angle(np.exp(1j * (estimator.estimate(frame).joint_positions
                                              - joints)))
                worst[name] = max(worst[name], float(np.degrees(np.abs(error)).max()))
    # Unmixed against the clean table, a magenta table reads as a turned arm.
    assert worst['raw'] > 10.0 and worst['normalised'] < 2.0, worst


def test_frames_too_small_for_the_window_are_refused():
    with pytest.raises(ValueError, match='image_size=8'):
        BackgroundNormalizer(8, RenderStyle().background)
