"""Config validation, the camera model, the renderer and the continuous task."""

import numpy as np
import pytest

from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.kinematics import inverse_kinematics
from reacher_sim.camera import CameraModel
from reacher_sim.config import SimConfig, SimNodeConfig
from reacher_sim.render import ArmRenderer, RenderStyle
from reacher_sim.task import GoalEvent, ReachingTask


@pytest.mark.parametrize('cls, field, value', [
    (Timing, 'dt', 0.0), (ArmGeometry, 'upper_arm_length_m', -0.1), (ArmGeometry, 'image_size', 8),
    (SimConfig, 'success_hold_steps', 0), (SimConfig, 'goal_sampling', 'anywhere'),
    (ArmGeometry, 'arena_size_m', 0.3), (ArmGeometry, 'max_joint_velocity', float('nan')),
])
def test_sim_config_names_the_bad_field(cls, field, value):
    with pytest.raises(ValueError, match=field):
        cls(**{field: value})


def test_sim_node_config_names_the_bad_field():
    with pytest.raises(ValueError, match='goal_timeout_s'):
        SimNodeConfig(goal_timeout_s=0.0)


def test_camera_round_trip_and_edges():
    camera = CameraModel(64, 0.4)
    points = np.random.default_rng(0).uniform(-0.2, 0.2, size=(100, 2))
    np.testing.assert_allclose(camera.pixel_to_world(camera.world_to_pixel(points)), points)
    np.testing.assert_allclose(camera.world_to_pixel([(-0.2, 0.2), (0.2, -0.2)]),
                               [(-0.5, -0.5), (63.5, 63.5)])
    intrinsics = camera.intrinsics()
    assert intrinsics[0, 0] == pytest.approx(160.0) and intrinsics[0, 2] == pytest.approx(31.5)


def test_renderer_draws_each_part_where_it_belongs():
    config = SimConfig()
    style = RenderStyle()
    frame = ArmRenderer(config.geometry, style).render([0.0, np.pi / 2], [-0.1, -0.1])
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    camera = CameraModel.from_geometry(config.geometry)

    def colour_at(xy):
        u, v = np.round(camera.world_to_pixel(xy)).astype(int)
        return tuple(int(c) for c in frame[v, u])

    # Upper arm along +x, forearm straight up from the elbow at (0.1, 0), goal at (-0.1, -0.1).
    assert colour_at((0.05, 0.0)) == style.upper_arm
    assert colour_at((0.1, 0.06)) == style.forearm
    assert colour_at((-0.1, -0.1)) == style.goal
    assert colour_at((-0.15, 0.15)) == style.background


def test_renderer_is_deterministic_and_subpixel_sensitive():
    renderer = ArmRenderer(ArmGeometry())
    a = renderer.render([0.3, 0.4], [0.05, 0.1])
    np.testing.assert_array_equal(a, renderer.render([0.3, 0.4], [0.05, 0.1]))
    # A 1 mm goal shift (a sixth of a pixel) still changes the image.
    assert not np.array_equal(a, renderer.render([0.3, 0.4], [0.051, 0.1]))


@pytest.mark.parametrize('supersample', [1, 3, 4])
def test_renderer_frames_do_not_depend_on_the_previous_one(supersample):
    # The renderer restores and averages down only the regions the last frame drew in: a
    # frame must equal the same frame from a fresh renderer, goals off the image included.
    geometry = ArmGeometry()
    rng = np.random.default_rng(3)
    reused = ArmRenderer(geometry, supersample=supersample)
    for _ in range(40):
        joints, goal = rng.uniform(-np.pi, np.pi, 2), rng.uniform(-0.3, 0.3, 2)
        fresh = ArmRenderer(geometry, supersample=supersample).render(joints, goal)
        np.testing.assert_array_equal(reused.render(joints, goal), fresh)


def test_task_counts_reached_and_timed_out_goals():
    config = SimConfig(timing=Timing(dt=0.1), success_hold_steps=3)
    task = ReachingTask(config, goal_timeout_s=1.0, seed=0)
    events = [task.step([0.0, 0.0])[1] for _ in range(10)]
    assert events.count(GoalEvent.TIMED_OUT) == 1 and events[-1] is GoalEvent.TIMED_OUT
    task.arm.joint_positions = inverse_kinematics(task.arm.goal, 0.1, 0.1)
    events = [task.step([0.0, 0.0])[1] for _ in range(3)]
    assert events == [None, None, GoalEvent.REACHED]
    stats = task.stats()
    assert (stats.goals_reached, stats.goals_timed_out) == (1, 1)
    assert stats.success_rate == pytest.approx(0.5)
    assert stats.mean_time_to_goal_s == pytest.approx(0.3)
    task.reset()
    assert task.stats().goals_reached == 0


def test_task_rejects_bad_commands():
    task = ReachingTask(SimConfig(), goal_timeout_s=5.0)
    for bad in ([np.nan, 0.0], [0.0], [1.0, 2.0, 3.0]):
        with pytest.raises(ValueError, match='2 finite'):
            task.step(bad)


def test_frames_every_divides_the_physics_rate_or_names_the_parameter():
    from reacher_sim.config import frames_every

    assert frames_every(0.0, 0.05) == 1 and frames_every(20.0, 0.05) == 1
    assert frames_every(10.0, 0.05) == 2 and frames_every(30.0, 1.0 / 60.0) == 2
    assert frames_every(20.0, 1.0 / 60.0) == 3
    for rate, dt in ((30.0, 0.05), (40.0, 0.05), (25.0, 1.0 / 60.0)):
        with pytest.raises(ValueError, match='parameter camera_rate_hz'):
            frames_every(rate, dt)
