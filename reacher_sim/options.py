"""Typed options of the training task: reward terms, curriculum and robustness.

:class:`reacher_sim.env.ReacherEnv` computes the reward terms; the curriculum and the
robustness options are the wrappers of :mod:`reacher_sim.wrappers`, which
:func:`reacher_sim.wrappers.make_env` adds. Every default leaves the task exactly as the
seed's (issue 3): the seed reward, no curriculum, no noise and no delay.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from reacher_common.config_tools import check_fields
from reacher_sim.config import SimConfig

CurriculumMode = Literal['off', 'linear', 'success']


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the reward terms; the defaults give the seed's reward.

    ``reward = reward_dist + reward_goal + reward_shaping + reward_success
    + reward_action + reward_integral + reward_action_change + reward_precision``, each
    term in ``info`` (see :func:`reward_terms`). ``reward_action``, ``reward_integral`` and
    ``reward_action_change`` are PID-type smoothness terms: a penalty on the action (P),
    on the distance error accumulated over the episode (I) and on the change of action
    between steps (D).

    :raises ValueError: from ``__post_init__``, naming a negative weight.
    """

    dist_weight: float = 1.0
    """Weight of ``-distance / arena_size`` (seed: 1), >= 0."""
    goal_weight: float = 1.0
    """Reward per step with the fingertip inside the goal (seed: 1), >= 0."""
    shaping_weight: float = 0.0
    """Weight of the potential-based progress term ``(d_prev - d) / step_scale`` (as in
    seed 002's Roboschool reacher), where ``step_scale = reach * max_joint_velocity * dt``
    is about the farthest the fingertip moves in one step, >= 0."""
    success_weight: float = 0.0
    """Bonus on the step that completes the hold (the episode then terminates), >= 0.
    The seed has none, so with ``goal_weight`` > 0 ending an episode forfeits the
    discounted future goal reward; ``goal_weight / (1 - gamma)`` makes it neutral."""
    action_weight: float = 0.0
    """P: weight of the penalty ``mean(a^2)`` on the action in [-1, 1], >= 0."""
    integral_weight: float = 0.0
    """I: weight of the penalty on ``sum_k (d_k / arena_size) * dt`` over the episode so
    far (seconds), >= 0."""
    action_change_weight: float = 0.0
    """D: weight of the penalty ``mean((a_t - a_{t-1})^2)`` (``a_{-1} = 0``), >= 0."""
    precision_weight: float = 0.0
    """Weight of the precision bonus ``exp(-distance / precision_scale_m)`` (1 at the goal
    centre), >= 0. Its slope is steepest near the goal, where ``reward_dist``'s is as flat
    as anywhere, so it pulls a fingertip that stalls a few centimetres out to the centre,
    from where the hold is not lost to small motions."""
    precision_scale_m: float = 0.02
    """Distance scale of the precision bonus, metres, > 0 (0.02: half the goal side)."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'dist_weight': self.dist_weight >= 0.0,
            'goal_weight': self.goal_weight >= 0.0,
            'shaping_weight': self.shaping_weight >= 0.0,
            'success_weight': self.success_weight >= 0.0,
            'action_weight': self.action_weight >= 0.0,
            'integral_weight': self.integral_weight >= 0.0,
            'action_change_weight': self.action_change_weight >= 0.0,
            'precision_weight': self.precision_weight >= 0.0,
            'precision_scale_m': self.precision_scale_m > 0.0,
        })


@dataclass(frozen=True)
class CurriculumConfig:
    """Goals that start near the fingertip and large, then widen to the task's own.

    A curriculum level ``l`` in [0, 1] sets the goal side to
    ``start_goal_size_m + l * (goal_size_m - start_goal_size_m)`` and draws goal centres
    within ``start_max_distance_m + l * (2 * reach - start_max_distance_m)`` of the
    fingertip; at ``l = 1`` goals come from ``SimConfig.goal_sampling`` unchanged.
    The level is per env (its :class:`reacher_sim.wrappers.Curriculum` wrapper): with
    vectorised envs each worker keeps its own.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    mode: CurriculumMode = 'off'
    """'off'; 'linear': the level rises from 0 to 1 over ``schedule_steps`` env steps;
    'success': it rises by ``level_increment`` each time the success rate of the last
    ``success_window`` episodes reaches ``success_threshold``."""
    start_goal_size_m: float = 0.08
    """Goal side at level 0, metres, > 0."""
    start_max_distance_m: float = 0.05
    """Largest fingertip-to-goal distance at level 0, metres, > 0."""
    schedule_steps: int = 5000
    """'linear': env steps (of this env) to reach level 1, >= 1."""
    success_threshold: float = 0.8
    """'success': success rate over the window that raises the level, in (0, 1]."""
    success_window: int = 10
    """'success': episodes in the window (the window restarts at each rise), >= 1."""
    level_increment: float = 0.25
    """'success': rise of the level per step, in (0, 1]."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'mode': self.mode in ('off', 'linear', 'success'),
            'start_goal_size_m': self.start_goal_size_m > 0.0,
            'start_max_distance_m': self.start_max_distance_m > 0.0,
            'schedule_steps': self.schedule_steps >= 1,
            'success_threshold': 0.0 < self.success_threshold <= 1.0,
            'success_window': self.success_window >= 1,
            'level_increment': 0.0 < self.level_increment <= 1.0,
        })


@dataclass(frozen=True)
class RobustnessConfig:
    """Perturbations of what the policy sees and does, for training and evaluation.

    Noise is drawn from the env's ``np_random``, so a seeded episode is reproducible.
    Observation noise and delay act on the joint angles and goal the state vector is
    built from (as perception errors would), not on the true arm.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    joint_noise_std_rad: float = 0.0
    """Std of Gaussian noise on each observed joint angle, radians, >= 0."""
    goal_noise_std_m: float = 0.0
    """Std of Gaussian noise on each observed goal coordinate, metres, >= 0."""
    action_noise_std: float = 0.0
    """Std of Gaussian noise added to the action (in [-1, 1] units) before clipping, >= 0."""
    observation_delay_steps: int = 0
    """The observation shows the state this many env steps old, in [0, 100]."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'joint_noise_std_rad': self.joint_noise_std_rad >= 0.0,
            'goal_noise_std_m': self.goal_noise_std_m >= 0.0,
            'action_noise_std': self.action_noise_std >= 0.0,
            'observation_delay_steps': 0 <= self.observation_delay_steps <= 100,
        })

    @property
    def active(self) -> bool:
        """Whether any perturbation is on."""
        return (self.joint_noise_std_rad > 0.0 or self.goal_noise_std_m > 0.0
                or self.action_noise_std > 0.0 or self.observation_delay_steps > 0)


def reward_terms(distance_m: float, previous_distance_m: float, inside_goal: bool,
                 action: npt.ArrayLike, previous_action: npt.ArrayLike,
                 integral_error_s: float, config: RewardConfig,
                 sim_config: SimConfig, success: bool = False) -> dict[str, float]:
    """Each weighted term of one step's reward.

    :param distance_m: fingertip-to-goal distance after the step, metres.
    :param previous_distance_m: the same before the step, metres.
    :param inside_goal: whether the fingertip is inside the goal after the step.
    :param action: (2,) the step's action, clipped to [-1, 1].
    :param previous_action: (2,) the previous step's action (zeros at episode start).
    :param integral_error_s: ``sum_k (d_k / arena_size) * dt`` over the episode up to and
        including this step, seconds.
    :param config: the weights.
    :param sim_config: arena size, reach, velocity limit and dt.
    :param success: whether this step completed the hold.
    :return: ``reward_dist``, ``reward_goal``, ``reward_shaping``, ``reward_success``,
        ``reward_action``,
        ``reward_integral``, ``reward_action_change``, ``reward_precision``; the reward is
        their sum.
    """
    act = np.asarray(action, dtype=np.float64)
    change = act - np.asarray(previous_action, dtype=np.float64)
    geometry = sim_config.geometry
    step_scale = geometry.reach_m * geometry.max_joint_velocity * sim_config.timing.dt
    return {
        'reward_dist': -config.dist_weight * distance_m / sim_config.geometry.arena_size_m,
        'reward_goal': config.goal_weight * float(inside_goal),
        'reward_shaping': config.shaping_weight * (previous_distance_m - distance_m)
        / step_scale,
        'reward_success': config.success_weight * float(success),
        'reward_action': -config.action_weight * float(np.mean(act * act)),
        'reward_integral': -config.integral_weight * integral_error_s,
        'reward_action_change': -config.action_change_weight * float(np.mean(change * change)),
        'reward_precision': config.precision_weight
        * math.exp(-distance_m / config.precision_scale_m),
    }
