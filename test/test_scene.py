import dataclasses

import numpy as np
import pytest

from reacher_common.geometry import ArmGeometry
from reacher_sim.config import SimConfig
from reacher_sim.env import ReacherEnv
from reacher_sim.render import ArmRenderer
from reacher_sim.scene import FAMILY_FIELDS, Scene, SCENE_FAMILIES, SceneConfig, SCENES

POSE, GOAL = (0.4, 1.1), (0.08, 0.09)


def scene_env(name: str) -> ReacherEnv:
    return ReacherEnv(SimConfig(scene=SceneConfig(name=name)), observation_mode='state_pixels')


def test_named_scenes_cover_every_family():
    assert set(SCENES) == {'clean', 'randomized', *SCENE_FAMILIES}
    assert SCENES['randomized'] == SCENE_FAMILIES and SCENES['clean'] == ()


@pytest.mark.parametrize('name', sorted(SCENES))
def test_a_seed_reproduces_a_scene_and_its_frames(name):
    first, second = (SceneConfig(name=name).sample(np.random.default_rng(3)) for _ in range(2))
    assert first == second
    frames = []
    for _ in range(2):
        env = scene_env(name)
        observation, _ = env.reset(seed=11)
        pixels = [observation['pixels']]
        for _ in range(3):
            pixels.append(env.step(np.array([0.5, -0.5], np.float32))[0]['pixels'])
        frames.append(np.stack(pixels))
    np.testing.assert_array_equal(frames[0], frames[1])


@pytest.mark.parametrize('family', SCENE_FAMILIES)
def test_each_family_changes_the_frame_and_not_the_ground_truth(family):
    clean, changed = scene_env('clean'), scene_env(family)
    for env_seed in (0, 1, 2):
        (clean_obs, clean_info), (obs, info) = clean.reset(seed=env_seed), changed.reset(
            seed=env_seed)
        np.testing.assert_array_equal(obs['state'], clean_obs['state'])
        np.testing.assert_array_equal(info['joint_positions'], clean_info['joint_positions'])
        np.testing.assert_array_equal(info['goal'], clean_info['goal'])
        assert np.abs(obs['pixels'].astype(int) - clean_obs['pixels']).max() > 0
        action = np.array([1.0, -0.3], np.float32)
        clean_step, step = clean.step(action), changed.step(action)
        np.testing.assert_array_equal(step[0]['state'], clean_step[0]['state'])
        assert step[1:4] == clean_step[1:4]


def test_a_clean_scene_draws_nothing_from_the_random_stream():
    rng, untouched = np.random.default_rng(5), np.random.default_rng(5)
    assert SceneConfig().sample(rng).clean
    assert rng.random() == untouched.random()


def test_scene_colours_keep_their_contrast_with_the_arm_and_goal():
    renderer = ArmRenderer(ArmGeometry())
    config = SceneConfig(name='randomized')
    rng = np.random.default_rng(0)
    for _ in range(50):
        scene = config.sample(rng, renderer.avoid_colours)
        colours = [scene.background] + [c for _, c in scene.lines] + [
            blob[3] for blob in scene.blobs] + ([scene.mover[4]] if scene.mover else [])
        for colour in colours:
            assert min(np.linalg.norm(np.subtract(colour, avoid))
                       for avoid in renderer.avoid_colours) >= config.background_min_contrast


def test_back_to_the_clean_scene_gives_the_clean_frame():
    renderer = ArmRenderer(ArmGeometry())
    clean = renderer.render(POSE, GOAL)
    renderer.set_scene(SceneConfig(name='randomized').sample(np.random.default_rng(1)))
    assert np.abs(renderer.render(POSE, GOAL).astype(int) - clean).max() > 0
    renderer.set_scene(None)
    np.testing.assert_array_equal(renderer.render(POSE, GOAL), clean)


def test_a_scene_without_a_family_keeps_the_others_and_renders_differently():
    renderer = ArmRenderer(ArmGeometry())
    randomized = SceneConfig(name='randomized').sample(np.random.default_rng(2))
    renderer.set_scene(randomized)
    full = renderer.render(POSE, GOAL).astype(int)
    clean_scene = Scene()
    for family in SCENE_FAMILIES:
        without = randomized.without(family)
        assert without.families == tuple(f for f in SCENE_FAMILIES if f != family)
        for field in dataclasses.fields(Scene):
            expected = (clean_scene if field.name in FAMILY_FIELDS[family] else randomized)
            if field.name != 'families':
                assert getattr(without, field.name) == getattr(expected, field.name), field
        renderer.set_scene(without)
        assert np.abs(renderer.render(POSE, GOAL) - full).max() > 0, family
    renderer.set_scene(None)
    clean = renderer.render(POSE, GOAL)
    renderer.set_scene(randomized.without(*SCENE_FAMILIES))
    np.testing.assert_array_equal(renderer.render(POSE, GOAL), clean)
    with pytest.raises(ValueError, match='not scene families'):
        randomized.without('fog')


@pytest.mark.parametrize('field, value', [
    ('name', 'studio'), ('noise_std_max', -1.0), ('roll_max_deg', 45.0),
    ('jpeg_quality_min', 0), ('texture_cells', 1)])
def test_a_bad_scene_value_is_refused_by_name(field, value):
    with pytest.raises(ValueError, match=rf'SceneConfig\.{field}='):
        SceneConfig(**{field: value})


def test_scene_fields_are_documented():
    from reacher_common.config_tools import field_docs

    docs = field_docs(SceneConfig)
    assert all(docs.get(f.name) for f in dataclasses.fields(SceneConfig))
