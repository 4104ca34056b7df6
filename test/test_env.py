"""The gymnasium env: API conformance, spaces, determinism, rewards and episode ends."""

import gymnasium as gym
from gymnasium.utils.env_checker import check_env
import numpy as np
import pytest

from reacher_common.geometry import Timing
from reacher_common.kinematics import inverse_kinematics
from reacher_sim.arm import ArmSim
from reacher_sim.config import SimConfig
import reacher_sim.env  # noqa: F401 - registers reacher/Reacher-v0
from reacher_sim.env import ReacherEnv, state_vector


@pytest.mark.parametrize('mode', ['state', 'pixels', 'state_pixels'])
def test_check_env(mode):
    env = gym.make('reacher/Reacher-v0', observation_mode=mode, render_mode='rgb_array')
    check_env(env.unwrapped, skip_render_check=True)
    observation, _ = env.reset(seed=1)
    assert env.observation_space.contains(observation)


def test_pixels_are_the_camera_frame():
    env = ReacherEnv(observation_mode='pixels', render_mode='rgb_array')
    observation, _ = env.reset(seed=3)
    assert observation.shape == (64, 64, 3) and observation.dtype == np.uint8
    np.testing.assert_array_equal(observation, env.render())


def test_same_seed_same_rollout():
    def rollout(seed):
        env = ReacherEnv(observation_mode='state_pixels')
        env.action_space.seed(seed)
        observation, _ = env.reset(seed=seed)
        states, frames = [observation['state']], [observation['pixels']]
        for _ in range(20):
            observation, *_ = env.step(env.action_space.sample())
            states.append(observation['state'])
            frames.append(observation['pixels'])
        return np.array(states), np.array(frames)

    states_a, frames_a = rollout(7)
    states_b, frames_b = rollout(7)
    states_c, _ = rollout(8)
    np.testing.assert_array_equal(states_a, states_b)
    np.testing.assert_array_equal(frames_a, frames_b)
    assert not np.array_equal(states_a, states_c)


def test_reward_is_the_seeds_and_terms_are_in_info():
    env = ReacherEnv()
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
    distance = np.linalg.norm(info['fingertip'] - info['goal'])
    assert info['reward_dist'] == pytest.approx(-distance / 0.4)
    assert reward == pytest.approx(info['reward_dist'] + info['reward_goal'])
    assert not terminated and not truncated and info['is_success'] is False


def test_holding_the_goal_terminates_with_success():
    config = SimConfig(success_hold_steps=5)
    env = ReacherEnv(config)
    env.reset(seed=2)
    arm = env.unwrapped.arm if hasattr(env, 'unwrapped') else env.arm
    arm.joint_positions = inverse_kinematics(arm.goal, 0.1, 0.1)
    for step in range(5):
        _, reward, terminated, _, info = env.step(np.zeros(2, dtype=np.float32))
        assert info['reward_goal'] == 1.0 and reward > 0.9
        assert terminated == (step == 4)
    assert info['is_success'] is True


def test_truncated_after_max_episode_steps():
    env = ReacherEnv(SimConfig(max_episode_steps=3))
    env.reset(seed=0)
    ends = [env.step(np.zeros(2, dtype=np.float32))[3] for _ in range(3)]
    assert ends == [False, False, True]


def test_actions_are_clipped_to_the_joint_velocity_limit():
    env = ReacherEnv(SimConfig(timing=Timing(dt=0.1)))
    env.reset(seed=0)
    before = env.arm.joint_positions.copy()
    env.step(np.array([5.0, -5.0], dtype=np.float32))
    moved = env.arm.joint_positions - before
    np.testing.assert_allclose(np.abs(moved), [0.1, 0.1], atol=1e-9)


def test_reachable_goals_are_reachable_and_seed_sampling_is_not():
    rng = np.random.default_rng(0)
    reachable = ArmSim(SimConfig())
    seed = ArmSim(SimConfig(goal_sampling='seed'))
    near = [np.linalg.norm(reachable.sample_goal(rng)) <= 0.19 + 1e-9 for _ in range(2000)]
    far = [np.linalg.norm(seed.sample_goal(rng)) > 0.2 for _ in range(2000)]
    assert all(near)
    # The seed's sampling puts some goal centres out of reach (8.3% of goals by area
    # lie wholly outside it; more have their centre outside).
    assert 0.05 < np.mean(far) < 0.3


def test_state_vector_layout():
    config = SimConfig()
    vector = state_vector([0.0, 0.0], [0.2, 0.0], config.geometry)
    np.testing.assert_allclose(vector, [1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 1], atol=1e-7)
    assert vector.dtype == np.float32


@pytest.mark.parametrize('bad', [{'observation_mode': 'rgb'}, {'render_mode': 'window'}])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(ValueError, match=list(bad)[0]):
        ReacherEnv(**bad)


def test_human_render_without_display_says_what_to_do(monkeypatch):
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    env = ReacherEnv(render_mode='human')
    with pytest.raises((RuntimeError, gym.error.DependencyNotInstalled),
                       match='DISPLAY|pyglet'):
        env.reset(seed=0)
