"""Training options of the reacher env as gymnasium wrappers, and the factory composing them.

:func:`make_env` wraps :class:`reacher_sim.env.ReacherEnv` in the wrappers that a
:class:`reacher_sim.options.CurriculumConfig` and a
:class:`reacher_sim.options.RobustnessConfig` turn on, innermost first:

1. :class:`ActionNoise`: Gaussian noise on the executed action (not on the action the
   reward's P and D terms judge).
2. :class:`Curriculum`: goals near the fingertip and larger, widening to the task's own.
3. :class:`ObservationNoise`: Gaussian noise on the joint angles and goal the state
   observation is built from.
4. :class:`ObservationDelay`: the state observation of a few steps ago.

Every random draw comes from the env's ``np_random`` in a fixed order (reset: the arm's
pose and goal, then the curriculum's goal, then the observation noise; step: the action
noise, then the observation noise), so a seeded episode is reproducible. Observation
noise and delay act on the state part only; pixels always show the true arm.
"""

from __future__ import annotations

from collections import deque
import math
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from reacher_sim.config import SimConfig
from reacher_sim.env import ObservationMode, ReacherEnv
from reacher_sim.options import CurriculumConfig, RewardConfig, RobustnessConfig

Action = npt.NDArray[np.float32]
StepReturn = tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]


def _reacher(env: gym.Env[Any, Action]) -> ReacherEnv:
    """The :class:`ReacherEnv` under ``env``'s wrappers; a wrapper here needs its hooks."""
    base = env.unwrapped
    if not isinstance(base, ReacherEnv):
        raise TypeError(f'these wrappers wrap a ReacherEnv, got {type(base).__name__}')
    return base


class ActionNoise(gym.Wrapper[Any, Action, Any, Action]):
    """The joints execute the clipped action plus Gaussian noise, clipped again.

    The reward's P and D terms still see the action the policy commanded
    (:meth:`ReacherEnv.step_executing`), so this wrapper must wrap the env itself.

    :param env: a :class:`ReacherEnv`, not wrapped.
    :param std: noise std in action units ([-1, 1] is the velocity range), > 0.
    :raises TypeError: if ``env`` is not a bare :class:`ReacherEnv`.
    """

    def __init__(self, env: gym.Env[Any, Action], std: float) -> None:
        super().__init__(env)
        if not isinstance(env, ReacherEnv):
            raise TypeError('ActionNoise must wrap the ReacherEnv itself (innermost), so '
                            'that the reward sees the commanded action')
        self.reacher = env
        self.std = float(std)

    def step(self, action: Action) -> StepReturn:
        """Draw the noise, execute the noisy action and reward the commanded one."""
        commanded = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        executed = np.clip(commanded + self.np_random.normal(0.0, self.std, 2), -1.0, 1.0)
        return self.reacher.step_executing(commanded, executed)


class Curriculum(gym.Wrapper[Any, Action, Any, Action]):
    """Goals that start near the fingertip and large, then widen to the task's own.

    At each reset the level ``l`` in [0, 1] sets the goal side and the largest
    fingertip-to-goal distance (see :class:`CurriculumConfig`); at ``l = 1`` the goal drawn
    by the env stays. ``info['curriculum_level']`` reports the level. It rises with this
    wrapper's own step count ('linear') or with its success rate ('success'); with
    vectorised envs each worker keeps its own.

    :param env: a :class:`ReacherEnv`, possibly wrapped in :class:`ActionNoise`.
    :param config: the curriculum; mode 'off' leaves the env unchanged.
    """

    def __init__(self, env: gym.Env[Any, Action], config: CurriculumConfig) -> None:
        super().__init__(env)
        self.reacher = _reacher(env)
        self.config = config
        self.curriculum_level = 0.0 if config.mode != 'off' else 1.0
        self.total_steps = 0
        self._recent_successes: list[bool] = []

    def set_curriculum_level(self, level: float) -> None:
        """Set the curriculum level in [0, 1] (takes effect at the next reset)."""
        self.curriculum_level = float(min(1.0, max(0.0, level)))

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env, then resize and redraw its goal for the current level."""
        observation, info = self.env.reset(seed=seed, options=options)
        if self.config.mode == 'off':
            return observation, info
        observation, info = self._apply()
        info['curriculum_level'] = self.curriculum_level
        return observation, info

    def step(self, action: Action) -> StepReturn:
        """Step the env and update the level (used from the next reset on)."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.total_steps += 1
        if self.config.mode != 'off':
            self._update(terminated or truncated, bool(info['is_success']))
        info['curriculum_level'] = self.curriculum_level
        return observation, reward, terminated, truncated, info

    def _apply(self) -> tuple[Any, dict[str, Any]]:
        """Resize and redraw the goal for the current curriculum level."""
        level, cur, cfg = self.curriculum_level, self.config, self.reacher.config
        size = cur.start_goal_size_m + level * (cfg.geometry.goal_size_m - cur.start_goal_size_m)
        if level >= 1.0:
            return self.reacher.set_goal(None, size)
        max_distance = cur.start_max_distance_m + level * (
            2.0 * cfg.geometry.reach_m - cur.start_max_distance_m)
        tip = self.reacher.arm.fingertip
        r_min = (abs(cfg.geometry.upper_arm_length_m - cfg.geometry.forearm_length_m)
                 + cfg.goal_margin_m)
        r_max = cfg.geometry.reach_m - cfg.goal_margin_m
        half = (cfg.geometry.arena_size_m - size) / 2.0
        for _ in range(1000):
            radius = max_distance * math.sqrt(self.np_random.uniform())
            angle = self.np_random.uniform(-math.pi, math.pi)
            goal = tip + radius * np.array([math.cos(angle), math.sin(angle)])
            if cfg.goal_sampling == 'seed':
                ok = bool(np.all(np.abs(goal) <= half))
            else:
                ok = r_min <= float(np.linalg.norm(goal)) <= r_max
            if ok:
                return self.reacher.set_goal(goal, size)
        # Practically unreachable (the fingertip always lies in the workspace); keep the
        # full-task goal drawn by the arm.
        return self.reacher.set_goal(None, size)

    def _update(self, episode_end: bool, success: bool) -> None:
        cur = self.config
        if cur.mode == 'linear':
            self.curriculum_level = min(1.0, self.total_steps / cur.schedule_steps)
        elif cur.mode == 'success' and episode_end:
            self._recent_successes.append(success)
            if len(self._recent_successes) >= cur.success_window:
                if np.mean(self._recent_successes) >= cur.success_threshold:
                    self.set_curriculum_level(self.curriculum_level + cur.level_increment)
                self._recent_successes = []


class ObservationNoise(gym.Wrapper[Any, Action, Any, Action]):
    """The state observation is built from noisy joint angles and goal.

    The true joint angles and goal are ``info['joint_positions']`` and ``info['goal']``
    (which stay true); isotropic Gaussian noise on them models perception errors. With
    ``observation_mode='pixels'`` nothing changes and nothing is drawn.

    :param env: a (wrapped) :class:`ReacherEnv`.
    :param joint_noise_std_rad: std on each joint angle, radians, >= 0.
    :param goal_noise_std_m: std on each goal coordinate, metres, >= 0.
    """

    def __init__(self, env: gym.Env[Any, Action], joint_noise_std_rad: float,
                 goal_noise_std_m: float) -> None:
        super().__init__(env)
        self.reacher = _reacher(env)
        self.joint_noise_std_rad = float(joint_noise_std_rad)
        self.goal_noise_std_m = float(goal_noise_std_m)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env and observe its start with noise."""
        observation, info = self.env.reset(seed=seed, options=options)
        return self._noisy(observation, info), info

    def step(self, action: Action) -> StepReturn:
        """Step the env and observe the result with noise."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        return self._noisy(observation, info), reward, terminated, truncated, info

    def _noisy(self, observation: Any, info: dict[str, Any]) -> Any:
        mode = self.reacher.observation_mode
        if mode == 'pixels':
            return observation
        joints, goal = info['joint_positions'], info['goal']
        if self.joint_noise_std_rad > 0.0:
            joints = joints + self.np_random.normal(0.0, self.joint_noise_std_rad, 2)
        if self.goal_noise_std_m > 0.0:
            goal = goal + self.np_random.normal(0.0, self.goal_noise_std_m, 2)
        state = self.reacher.observe_state(joints, goal)
        return state if mode == 'state' else {**observation, 'state': state}


class ObservationDelay(gym.Wrapper[Any, Action, Any, Action]):
    """The state observation is the one of ``steps`` env steps ago.

    Right after a reset only the start exists, so the first observations repeat it. The
    delayed vectors keep the goal size they were observed with, which is constant within
    an episode. With ``observation_mode='pixels'`` nothing changes; with 'state_pixels'
    the pixels stay current.

    :param env: a (wrapped) :class:`ReacherEnv`.
    :param steps: the delay, env steps, >= 1.
    """

    def __init__(self, env: gym.Env[Any, Action], steps: int) -> None:
        super().__init__(env)
        self.reacher = _reacher(env)
        self.steps = int(steps)
        self._states: deque[npt.NDArray[np.float32]] = deque(maxlen=self.steps + 1)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env and forget the previous episode's observations."""
        observation, info = self.env.reset(seed=seed, options=options)
        self._states.clear()
        return self._delayed(observation), info

    def step(self, action: Action) -> StepReturn:
        """Step the env and return the observation of ``steps`` steps ago."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        return self._delayed(observation), reward, terminated, truncated, info

    def _delayed(self, observation: Any) -> Any:
        mode = self.reacher.observation_mode
        if mode == 'pixels':
            return observation
        self._states.append(observation if mode == 'state' else observation['state'])
        # The oldest kept entry is ``steps`` old (less just after reset); a copy, since a
        # caller may keep or change what it is given.
        state = self._states[0].copy()
        return state if mode == 'state' else {**observation, 'state': state}


def make_env(sim: SimConfig | None = None, observation_mode: ObservationMode = 'state',
             reward: RewardConfig | None = None, curriculum: CurriculumConfig | None = None,
             robustness: RobustnessConfig | None = None,
             render_mode: str | None = None) -> gym.Env[Any, Action]:
    """The reacher env with the options that the configs turn on.

    Training, evaluation, tests and benchmarks build their envs here. A wrapper is added
    only when its option is on, so the defaults give the bare :class:`ReacherEnv`.

    :param sim: world, arm, camera and task (None: ``SimConfig()``).
    :param observation_mode: 'state', 'pixels' or 'state_pixels'.
    :param reward: reward weights; None for the seed's reward.
    :param curriculum: goal curriculum; None for none.
    :param robustness: observation/action noise and delay; None for none.
    :param render_mode: None, 'rgb_array' or 'human'.
    :return: the env, wrapped innermost-first in :class:`ActionNoise`,
        :class:`Curriculum`, :class:`ObservationNoise` and :class:`ObservationDelay` as
        configured.
    """
    curriculum = curriculum or CurriculumConfig()
    robustness = robustness or RobustnessConfig()
    env: gym.Env[Any, Action] = ReacherEnv(sim, observation_mode=observation_mode,
                                           render_mode=render_mode, reward=reward)
    if robustness.action_noise_std > 0.0:
        env = ActionNoise(env, robustness.action_noise_std)
    if curriculum.mode != 'off':
        env = Curriculum(env, curriculum)
    if robustness.joint_noise_std_rad > 0.0 or robustness.goal_noise_std_m > 0.0:
        env = ObservationNoise(env, robustness.joint_noise_std_rad,
                               robustness.goal_noise_std_m)
    if robustness.observation_delay_steps > 0:
        env = ObservationDelay(env, robustness.observation_delay_steps)
    return env
