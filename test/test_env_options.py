"""Reward terms of ReacherEnv, and its curriculum and robustness wrappers (issue 3)."""

from dataclasses import replace
import math

from gymnasium.utils.env_checker import check_env
import numpy as np
import pytest

from reacher_common.geometry import Timing
from reacher_sim.config import SimConfig
from reacher_sim.env import ReacherEnv
from reacher_sim.options import CurriculumConfig, reward_terms, RewardConfig, RobustnessConfig
from reacher_sim.wrappers import ActionNoise, Curriculum, make_env

SIM = SimConfig(timing=Timing(dt=0.1))  # the seed's step, as these figures assume


def test_reward_terms_hand_computed():
    config = RewardConfig(dist_weight=2.0, goal_weight=3.0, shaping_weight=0.5,
                          success_weight=7.0, action_weight=0.1, integral_weight=0.2,
                          action_change_weight=0.4)
    terms = reward_terms(distance_m=0.08, previous_distance_m=0.1, inside_goal=True,
                         action=[0.5, -1.0], previous_action=[1.0, 1.0],
                         integral_error_s=0.3, config=config, sim_config=SIM,
                         success=True)
    # arena 0.4 m; step scale = reach 0.2 m * 1 rad/s * 0.1 s = 0.02 m.
    assert terms['reward_dist'] == pytest.approx(-2.0 * 0.08 / 0.4)
    assert terms['reward_goal'] == pytest.approx(3.0)
    assert terms['reward_shaping'] == pytest.approx(0.5 * 0.02 / 0.02)
    assert terms['reward_success'] == pytest.approx(7.0)
    assert terms['reward_action'] == pytest.approx(-0.1 * (0.25 + 1.0) / 2)
    assert terms['reward_integral'] == pytest.approx(-0.2 * 0.3)
    assert terms['reward_action_change'] == pytest.approx(-0.4 * (0.25 + 4.0) / 2)
    assert terms['reward_precision'] == 0.0


def test_precision_term_hand_computed():
    config = RewardConfig(precision_weight=2.0, precision_scale_m=0.02)
    at = {d: reward_terms(distance_m=d, previous_distance_m=d, inside_goal=False,
                          action=[0.0, 0.0], previous_action=[0.0, 0.0],
                          integral_error_s=0.0, config=config, sim_config=SIM)
          for d in (0.0, 0.02, 0.04)}
    # 2 * exp(-d / 0.02): 2 at the centre, 2/e at 2 cm, 2/e^2 at 4 cm.
    assert at[0.0]['reward_precision'] == pytest.approx(2.0)
    assert at[0.02]['reward_precision'] == pytest.approx(2.0 * 0.36787944117)
    assert at[0.04]['reward_precision'] == pytest.approx(2.0 * 0.13533528323)
    with pytest.raises(ValueError, match='precision_scale_m'):
        RewardConfig(precision_scale_m=0.0)


def test_default_reward_is_the_seeds():
    env = ReacherEnv(SIM)
    env.reset(seed=3)
    for _ in range(20):
        _, reward, _, _, info = env.step(np.array([0.7, -0.3], dtype=np.float32))
        expected = -info['distance'] / SIM.geometry.arena_size_m + float(info['hold_steps'] > 0)
        assert reward == pytest.approx(expected)
        assert info['reward_shaping'] == info['reward_action'] == 0.0
        assert info['reward_precision'] == 0.0


def test_env_logs_every_term_and_integrates_error():
    config = RewardConfig(shaping_weight=1.0, action_weight=1.0, integral_weight=1.0,
                          action_change_weight=1.0)
    env = ReacherEnv(SIM, reward=config)
    _, info = env.reset(seed=0)
    previous = info['distance']
    integral = 0.0
    actions = [np.array([1.0, 0.0]), np.array([1.0, 0.5]), np.array([-1.0, 0.5])]
    previous_action = np.zeros(2)
    for action in actions:
        _, reward, _, _, info = env.step(action.astype(np.float32))
        integral += info['distance'] / SIM.geometry.arena_size_m * SIM.timing.dt
        assert info['reward_shaping'] == pytest.approx((previous - info['distance']) / 0.02)
        assert info['reward_action'] == pytest.approx(-np.mean(action ** 2))
        assert info['reward_integral'] == pytest.approx(-integral)
        assert info['reward_action_change'] == pytest.approx(
            -np.mean((action - previous_action) ** 2))
        names = ('reward_dist', 'reward_goal', 'reward_shaping', 'reward_success',
                 'reward_action', 'reward_integral', 'reward_action_change',
                 'reward_precision')
        assert reward == pytest.approx(sum(info[name] for name in names))
        previous, previous_action = info['distance'], action


def test_negative_weight_is_refused():
    with pytest.raises(ValueError, match='action_weight'):
        RewardConfig(action_weight=-1.0)


# A linear curriculum changes goals across resets by design, so check_env's same-seed
# twin episodes need a level that stays put (no window completes here).

# check_env warns that it is given a wrapped env: the wrappers are what it checks here.
@pytest.mark.filterwarnings('ignore:.*is different from the unwrapped version')
def test_env_with_options_passes_check_env():
    env = make_env(SIM, reward=RewardConfig(shaping_weight=1.0),
                   curriculum=CurriculumConfig(mode='success', success_window=1000),
                   robustness=RobustnessConfig(joint_noise_std_rad=0.01,
                                               goal_noise_std_m=0.001,
                                               action_noise_std=0.1,
                                               observation_delay_steps=2))
    check_env(env, skip_render_check=True)


def test_linear_curriculum_widens_goals_on_schedule():
    curriculum = CurriculumConfig(mode='linear', start_goal_size_m=0.1,
                                  start_max_distance_m=0.03, schedule_steps=400)
    env = make_env(SIM, curriculum=curriculum)
    _, info = env.reset(seed=1)
    assert info['goal_size_m'] == pytest.approx(0.1)
    assert info['distance'] <= 0.03 + 1e-9
    for _ in range(30):
        env.step(env.action_space.sample())
        _, info = env.reset()
        level = env.total_steps / 400
        assert info['curriculum_level'] == pytest.approx(level)
        assert info['goal_size_m'] == pytest.approx(0.1 + level * (SIM.geometry.goal_size_m - 0.1))
        assert info['distance'] <= 0.03 + level * (2 * SIM.geometry.reach_m - 0.03) + 1e-9
    # Step to the end of the schedule: level 1, final goal size, goals anywhere.
    for _ in range(400):
        env.step(np.zeros(2, dtype=np.float32))
    assert env.curriculum_level == 1.0
    far = 0
    for _ in range(50):
        _, info = env.reset()
        assert info['goal_size_m'] == pytest.approx(SIM.geometry.goal_size_m)
        far += info['distance'] > 0.03
    assert far > 25


def test_curriculum_level_sets_size_and_distance():
    curriculum = CurriculumConfig(mode='linear', start_goal_size_m=0.08,
                                  start_max_distance_m=0.04, schedule_steps=10 ** 6)
    env = make_env(SIM, curriculum=curriculum)
    env.reset(seed=0)
    env.set_curriculum_level(0.5)
    limit = 0.04 + 0.5 * (2 * SIM.geometry.reach_m - 0.04)
    for _ in range(20):
        _, info = env.reset()
        assert info['goal_size_m'] == pytest.approx(0.06)
        assert info['distance'] <= limit + 1e-9
        goal_radius = float(np.linalg.norm(info['goal']))
        assert SIM.goal_margin_m <= goal_radius <= SIM.geometry.reach_m - SIM.goal_margin_m


def test_success_curriculum_rises_with_success():
    # A huge goal at level 0 is always reached at once, so each window raises the level.
    curriculum = CurriculumConfig(mode='success', start_goal_size_m=0.39,
                                  start_max_distance_m=0.01, success_window=2,
                                  success_threshold=1.0, level_increment=0.5)
    env = make_env(SimConfig(success_hold_steps=1), curriculum=curriculum)
    env.reset(seed=0)
    levels = []
    for _ in range(2):
        terminated = False
        while not terminated:
            _, _, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
            assert not truncated
        levels.append(env.curriculum_level)
        env.reset()
    assert levels == [0.0, 0.5]


def rollout(env, seed, steps=15):
    observation, _ = env.reset(seed=seed)
    observations = [observation]
    joints = []
    for step in range(steps):
        action = np.array([math.sin(step), math.cos(step)], dtype=np.float32)
        observation, _, _, _, info = env.step(action)
        observations.append(observation)
        joints.append(info['joint_positions'])
    return np.array(observations), np.array(joints)


def test_noise_and_delay_are_deterministic_with_seed():
    options = RobustnessConfig(joint_noise_std_rad=0.05, goal_noise_std_m=0.01,
                               action_noise_std=0.2, observation_delay_steps=1)
    first = rollout(make_env(SIM, robustness=options), seed=7)
    second = rollout(make_env(SIM, robustness=options), seed=7)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    clean = rollout(ReacherEnv(SIM), seed=7)
    assert not np.allclose(first[0], clean[0])


def test_observation_delay_shows_old_state():
    delayed = make_env(SIM, robustness=RobustnessConfig(observation_delay_steps=2))
    clean = ReacherEnv(SIM)
    observed, _ = rollout(delayed, seed=4)
    truth, _ = rollout(clean, seed=4)
    # Right after reset only the initial state exists; later, two steps old.
    np.testing.assert_array_equal(observed[1], truth[0])
    np.testing.assert_array_equal(observed[2], truth[0])
    np.testing.assert_array_equal(observed[5:], truth[3:-2])


def test_action_noise_moves_the_arm_differently():
    _, noisy = rollout(make_env(SIM, robustness=RobustnessConfig(action_noise_std=0.3)), 2)
    _, clean = rollout(ReacherEnv(SIM), 2)
    assert not np.allclose(noisy, clean)


def test_make_env_adds_only_the_wrappers_that_are_on():
    assert type(make_env(SIM)) is ReacherEnv
    env = make_env(SIM, curriculum=CurriculumConfig(mode='linear'),
                   robustness=RobustnessConfig(action_noise_std=0.1))
    assert isinstance(env, Curriculum) and isinstance(env.env, ActionNoise)
    with pytest.raises(TypeError, match='innermost'):
        ActionNoise(Curriculum(ReacherEnv(SIM), CurriculumConfig(mode='linear')), 0.1)


def test_action_noise_keeps_the_reward_on_the_commanded_action():
    config = RewardConfig(action_weight=1.0, action_change_weight=1.0)
    env = make_env(SIM, reward=config, robustness=RobustnessConfig(action_noise_std=0.5))
    env.reset(seed=0)
    previous = np.zeros(2)
    for action in ([0.5, -0.5], [1.0, 0.0], [0.0, 0.2]):
        _, _, _, _, info = env.step(np.array(action, dtype=np.float32))
        assert info['reward_action'] == pytest.approx(-np.mean(np.square(action)))
        assert info['reward_action_change'] == pytest.approx(
            -np.mean(np.square(np.array(action) - previous)))
        previous = np.array(action)


# Figures recorded from ReacherEnv before curriculum, noise and delay became wrappers
# (issue 10): the same seeds give the same draws, hence bit-identical numbers.
PIN_SIM = SimConfig(timing=Timing(dt=0.1), max_episode_steps=25)
PIN_LINEAR = CurriculumConfig(mode='linear', start_goal_size_m=0.1, start_max_distance_m=0.03,
                              schedule_steps=60)
PIN_SUCCESS = CurriculumConfig(mode='success', start_goal_size_m=0.39,
                               start_max_distance_m=0.01, success_window=2,
                               success_threshold=0.5, level_increment=0.25)
PIN_REWARD = RewardConfig(shaping_weight=1.0, success_weight=10.0, action_weight=0.3,
                          integral_weight=0.2, action_change_weight=0.5, precision_weight=1.0)
PIN_NOISE = RobustnessConfig(joint_noise_std_rad=0.05, goal_noise_std_m=0.01)
PIN_ALL = RobustnessConfig(joint_noise_std_rad=0.05, goal_noise_std_m=0.01,
                           action_noise_std=0.2, observation_delay_steps=2)
PINNED = [
    # (options, seed, entry 40: obs[8], goal x; last entry: reward, distance, level, obs[8])
    (dict(reward=PIN_REWARD, curriculum=PIN_LINEAR, robustness=PIN_ALL), 7,
     (0.472293496131897, 0.12088154047405593),
     (-0.4007692655979462, 0.07603756548345468, 1.0, -0.030917881056666374)),
    (dict(reward=PIN_REWARD, curriculum=PIN_SUCCESS, robustness=PIN_ALL,
          sim=replace(PIN_SIM, success_hold_steps=2), scale=0.1), 0,
     (-0.3299252986907959, 0.04145615792430372),
     (10.91269049717512, 0.05859343707021917, 0.75, -0.3299252986907959)),
    (dict(reward=PIN_REWARD, robustness=RobustnessConfig(action_noise_std=0.3)), 0,
     (0.13502207398414612, -0.0366518104660999),
     (-1.207550492451668, 0.15922314147446104, 1.0, -0.7879170179367065)),
    (dict(reward=PIN_REWARD, curriculum=PIN_LINEAR, robustness=PIN_ALL,
          mode='state_pixels'), 1,
     (-0.25542739033699036, 0.011832339547561022),
     (-0.6818147924176411, 0.14835890742801774, 1.0, -0.6445592641830444)),
    (dict(curriculum=PIN_LINEAR, sim=replace(PIN_SIM, goal_sampling='seed')), 1,
     (0.14253051578998566, 0.12831988002747802),
     (-0.2096306477702381, 0.08385225910809524, 1.0, 0.3663429617881775)),
    (dict(robustness=replace(PIN_NOISE, observation_delay_steps=3)), 0,
     (-0.9992365837097168, -0.16040691582295966),
     (-0.07811198455039743, 0.031244793820158975, 1.0, -0.021093353629112244)),
]


def pinned_rollout(options, seed, episodes=6):
    options = dict(options)
    scale = options.pop('scale', 1.3)
    mode = options.pop('mode', 'state')
    sim = options.pop('sim', PIN_SIM)
    env = make_env(sim, mode, **options)
    rng = np.random.default_rng(1000 + seed)
    trace = []
    for episode in range(episodes):
        observation, info = env.reset(seed=seed if episode in (0, 3) else None)
        trace.append((observation, None, info))
        for _ in range(sim.max_episode_steps):
            action = (rng.uniform(-1, 1, 2) * scale).astype(np.float32)
            observation, reward, terminated, truncated, info = env.step(action)
            trace.append((observation, reward, info))
            if terminated or truncated:
                break
    return trace


@pytest.mark.parametrize('options, seed, middle, last', PINNED)
def test_wrapped_options_reproduce_the_numbers_of_the_env_they_came_from(options, seed,
                                                                         middle, last):
    trace = pinned_rollout(options, seed)

    def state(observation):
        return observation['state'] if isinstance(observation, dict) else observation

    observation, _, info = trace[40]
    assert (float(state(observation)[8]), float(info['goal'][0])) == middle
    observation, reward, info = trace[-1]
    assert (reward, info['distance'], info['curriculum_level'],
            float(state(observation)[8])) == last
