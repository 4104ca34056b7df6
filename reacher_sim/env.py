"""Gymnasium environment of the camera-watched 2-link reacher."""

from __future__ import annotations

from collections import deque
import dataclasses
import math
from typing import Any, Literal, SupportsFloat

import gymnasium as gym
from gymnasium import spaces
import numpy as np
import numpy.typing as npt

from reacher_sim.arm import ArmSim
from reacher_sim.config import SimConfig
from reacher_sim.observation import STATE_DIM, STATE_HIGH, STATE_LOW, state_vector
from reacher_sim.options import CurriculumConfig, reward_terms, RewardConfig, RobustnessConfig
from reacher_sim.render import ArmRenderer

ObservationMode = Literal['state', 'pixels', 'state_pixels']
class ReacherEnv(gym.Env[Any, npt.NDArray[np.float32]]):
    """A 2-link planar arm reaching a square goal, seen by a top-down camera.

    ## Description
    The seed's reacher (two 0.1 m links from the centre of a 0.4 m arena, a 0.04 m
    goal square) in SI units. The arm is kinematic: the action sets joint velocities.
    The camera image is what the perception node sees in the ROS loop.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``: joint velocities as a fraction of
    ``max_joint_velocity`` (rad/s), (shoulder, elbow). Values outside are clipped.

    ## Observation Space
    - ``observation_mode='state'``: ``Box((11,), float32)``, see :func:`state_vector`.
    - ``'pixels'``: ``Box(0, 255, (H, W, 3), uint8)``, the rgb8 camera image.
    - ``'state_pixels'``: ``Dict(state=..., pixels=...)``.

    ## Rewards
    By default as the seed: ``reward = -distance / arena_size + 1[fingertip inside goal]``,
    in ``info`` as ``reward_dist`` and ``reward_goal``. ``reward=RewardConfig(...)`` adds
    potential-based shaping and P/I/D smoothness terms (``reward_shaping``,
    ``reward_action``, ``reward_integral``, ``reward_action_change``), see
    :func:`reacher_sim.options.reward_terms`.

    ## Starting State
    Joint angles uniform in [-pi, pi); the goal per ``goal_sampling``, or near the
    fingertip and larger while a curriculum (``curriculum=CurriculumConfig(...)``) is
    below level 1 (``info['curriculum_level']``, ``info['goal_size_m']``).

    ## Episode End
    Terminated when the fingertip has stayed inside the goal for
    ``success_hold_steps`` steps (``info['is_success']`` is then True); truncated after
    ``max_episode_steps`` steps.

    ## Arguments
    ``gymnasium.make('reacher/Reacher-v0', config=SimConfig(...),
    observation_mode='state', render_mode='rgb_array')``; ``render_mode='human'``
    opens a pyglet window (``pip install reacher[viz]``).

    ## Robustness
    ``robustness=RobustnessConfig(...)`` adds Gaussian noise to the observed joint angles
    and goal and to the action, and delays the observation by whole steps (state part
    only; pixels always show the true arm).

    ## Version History
    - v0: initial version; reward, curriculum and robustness options added with issue 3.

    :param config: world, arm, camera and task.
    :param observation_mode: 'state', 'pixels' or 'state_pixels'.
    :param render_mode: None, 'rgb_array' or 'human'.
    :param reward: reward weights; None for the seed's reward.
    :param curriculum: goal curriculum; None for none.
    :param robustness: observation/action noise and delay; None for none.
    """

    metadata = {'render_modes': ['rgb_array', 'human'], 'render_fps': 10}

    def __init__(self, config: SimConfig | None = None,
                 observation_mode: ObservationMode = 'state',
                 render_mode: str | None = None, reward: RewardConfig | None = None,
                 curriculum: CurriculumConfig | None = None,
                 robustness: RobustnessConfig | None = None) -> None:
        if observation_mode not in ('state', 'pixels', 'state_pixels'):
            raise ValueError(f"observation_mode={observation_mode!r}: use 'state', 'pixels' "
                             "or 'state_pixels'")
        if render_mode is not None and render_mode not in self.metadata['render_modes']:
            raise ValueError(f"render_mode={render_mode!r}: use None, 'rgb_array' or 'human'")
        self.config = config or SimConfig()
        self.observation_mode = observation_mode
        self.render_mode = render_mode
        self.metadata = {**self.metadata,
                         'render_fps': int(round(1.0 / self.config.timing.dt))}
        self.arm = ArmSim(self.config)
        self.renderer = ArmRenderer(self.config.geometry)
        self._viewer: Any = None
        self._elapsed_steps = 0
        size = self.config.geometry.image_size
        state_space = spaces.Box(STATE_LOW, STATE_HIGH, (STATE_DIM,), np.float32)
        pixel_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.observation_space: spaces.Space[Any]
        if observation_mode == 'state':
            self.observation_space = state_space
        elif observation_mode == 'pixels':
            self.observation_space = pixel_space
        else:
            self.observation_space = spaces.Dict({'state': state_space, 'pixels': pixel_space})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.reward_config = reward or RewardConfig()
        self.curriculum = curriculum or CurriculumConfig()
        self.robustness = robustness or RobustnessConfig()
        # The task config is ``config`` with the curriculum's goal size.
        self.task_config = self.config
        self.curriculum_level = 0.0 if self.curriculum.mode != 'off' else 1.0
        self.total_steps = 0
        self._recent_successes: list[bool] = []
        self._previous_action = np.zeros(2)
        self._previous_distance = 0.0
        self._integral_error = 0.0
        self._observed: deque[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = (
            deque(maxlen=self.robustness.observation_delay_steps + 1))

    def set_curriculum_level(self, level: float) -> None:
        """Set the curriculum level in [0, 1] (takes effect at the next reset)."""
        self.curriculum_level = float(min(1.0, max(0.0, level)))

    def _apply_curriculum(self) -> None:
        """Resize and redraw the goal for the current curriculum level."""
        level, cur, cfg = self.curriculum_level, self.curriculum, self.config
        size = cur.start_goal_size_m + level * (cfg.geometry.goal_size_m - cur.start_goal_size_m)
        self.task_config = dataclasses.replace(
            cfg, geometry=dataclasses.replace(cfg.geometry, goal_size_m=size))
        self.arm.config = self.task_config
        if level >= 1.0:
            return
        max_distance = cur.start_max_distance_m + level * (
            2.0 * cfg.geometry.reach_m - cur.start_max_distance_m)
        tip = self.arm.fingertip
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
                self.arm.goal = goal
                return
        # Practically unreachable (the fingertip always lies in the workspace); keep the
        # full-task goal drawn by the arm.

    def _update_curriculum(self, episode_end: bool, success: bool) -> None:
        cur = self.curriculum
        if cur.mode == 'linear':
            self.curriculum_level = min(1.0, self.total_steps / cur.schedule_steps)
        elif cur.mode == 'success' and episode_end:
            self._recent_successes.append(success)
            if len(self._recent_successes) >= cur.success_window:
                if np.mean(self._recent_successes) >= cur.success_threshold:
                    self.set_curriculum_level(self.curriculum_level + cur.level_increment)
                self._recent_successes = []

    def _observed_state(self) -> npt.NDArray[np.float32]:
        """The state vector as the policy sees it: noisy and delayed when configured."""
        rob = self.robustness
        joints, goal = self.arm.joint_positions.copy(), self.arm.goal.copy()
        if rob.joint_noise_std_rad > 0.0:
            joints = joints + self.np_random.normal(0.0, rob.joint_noise_std_rad, 2)
        if rob.goal_noise_std_m > 0.0:
            goal = goal + self.np_random.normal(0.0, rob.goal_noise_std_m, 2)
        self._observed.append((joints, goal))
        # The oldest kept entry is observation_delay_steps old (less just after reset).
        joints, goal = self._observed[0]
        return state_vector(joints, goal, self.task_config.geometry)

    def _observation(self) -> Any:
        if self.observation_mode == 'state':
            return self._observed_state()
        pixels = self.renderer.render(self.arm.joint_positions, self.arm.goal)
        if self.observation_mode == 'pixels':
            return pixels
        return {'state': self._observed_state(), 'pixels': pixels}

    def _info(self) -> dict[str, Any]:
        return {
            'joint_positions': self.arm.joint_positions.copy(),
            'fingertip': self.arm.fingertip,
            'goal': self.arm.goal.copy(),
            'distance': self.arm.distance(),
            'curriculum_level': self.curriculum_level,
            'goal_size_m': self.task_config.geometry.goal_size_m,
        }

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Start an episode; ``seed`` makes it reproducible (gymnasium API)."""
        super().reset(seed=seed)
        self.arm.reset(self.np_random)
        if self.curriculum.mode != 'off':
            self._apply_curriculum()
        self._elapsed_steps = 0
        self._previous_action = np.zeros(2)
        self._previous_distance = self.arm.distance()
        self._integral_error = 0.0
        self._observed.clear()
        if self.render_mode == 'human':
            self.render()
        return self._observation(), self._info()

    def step(self, action: npt.NDArray[np.float32]
             ) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply one action for ``dt`` seconds (gymnasium API)."""
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        executed = action
        if self.robustness.action_noise_std > 0.0:
            executed = np.clip(
                action + self.np_random.normal(0.0, self.robustness.action_noise_std, 2),
                -1.0, 1.0)
        result = self.arm.step(executed * self.config.geometry.max_joint_velocity)
        self._elapsed_steps += 1
        self.total_steps += 1
        self._integral_error += (result.distance_m / self.config.geometry.arena_size_m
                                 * self.config.timing.dt)
        terms = reward_terms(result.distance_m, self._previous_distance, result.inside_goal,
                             action, self._previous_action, self._integral_error,
                             self.reward_config, self.config, result.success)
        self._previous_action = np.asarray(action, dtype=np.float64)
        self._previous_distance = result.distance_m
        terminated = result.success
        truncated = self._elapsed_steps >= self.config.max_episode_steps and not terminated
        if self.curriculum.mode != 'off':
            self._update_curriculum(terminated or truncated, result.success)
        info = self._info()
        info.update(terms)
        info.update(is_success=result.success, hold_steps=result.hold_steps)
        if self.render_mode == 'human':
            self.render()
        reward = float(sum(terms.values()))
        return self._observation(), reward, terminated, truncated, info

    def render(self) -> npt.NDArray[np.uint8] | None:
        """'rgb_array': the camera frame, (H, W, 3) uint8; 'human': draw it in a window."""
        if self.render_mode is None:
            gym.logger.warn('render() called with render_mode=None; pass render_mode to make()')
            return None
        frame = self.renderer.render(self.arm.joint_positions, self.arm.goal)
        if self.render_mode == 'rgb_array':
            return frame
        if self._viewer is None:
            from reacher_sim.viewer import Viewer
            self._viewer = Viewer(title='reacher', fps=self.metadata['render_fps'])
        self._viewer.show(frame)
        return None

    def close(self) -> None:
        """Close the window, if one is open."""
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None


if 'reacher/Reacher-v0' not in gym.registry:
    gym.register(id='reacher/Reacher-v0', entry_point='reacher_sim.env:ReacherEnv')
