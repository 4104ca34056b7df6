"""Gymnasium environment of the camera-watched 2-link reacher."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, SupportsFloat

import gymnasium as gym
from gymnasium import spaces
import numpy as np
import numpy.typing as npt

from reacher_sim.arm import ArmSim
from reacher_sim.config import SimConfig
from reacher_sim.observation import STATE_DIM, STATE_HIGH, STATE_LOW, state_vector
from reacher_sim.options import reward_terms, RewardConfig
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
    Joint angles uniform in [-pi, pi); the goal per ``goal_sampling``. The
    :class:`reacher_sim.wrappers.Curriculum` wrapper moves it near the fingertip and
    enlarges it below level 1 (``info['curriculum_level']``, 1.0 for the bare env;
    ``info['goal_size_m']``), through :meth:`set_goal`. With ``SimConfig.scene`` other
    than 'clean', each episode draws a new scene (``reacher_sim.scene``: background,
    texture, lighting, distractors, camera jitter, blur, noise, JPEG) from ``np_random``;
    it changes the pixels only, never the state, reward or success.

    ## Episode End
    Terminated when the fingertip has stayed inside the goal for
    ``success_hold_steps`` steps (``info['is_success']`` is then True); truncated after
    ``max_episode_steps`` steps.

    ## Arguments
    ``gymnasium.make('reacher/Reacher-v0', config=SimConfig(...),
    observation_mode='state', render_mode='rgb_array')``; ``render_mode='human'``
    opens a pyglet window (``pip install reacher[viz]``).

    ## Curriculum and robustness
    Goal curriculum, observation noise, action noise and observation delay are gymnasium
    wrappers (:mod:`reacher_sim.wrappers`); :func:`reacher_sim.wrappers.make_env` builds
    the env with the options a ``CurriculumConfig`` and a ``RobustnessConfig`` turn on.

    ## Version History
    - v0: initial version; reward, curriculum and robustness options added with issue 3;
      curriculum and robustness moved to wrappers with issue 10 (same numbers); scenes
      (`SimConfig.scene`) with issue 11 (the clean default draws nothing new).

    :param config: world, arm, camera and task.
    :param observation_mode: 'state', 'pixels' or 'state_pixels'.
    :param render_mode: None, 'rgb_array' or 'human'.
    :param reward: reward weights; None for the seed's reward.
    """

    metadata = {'render_modes': ['rgb_array', 'human'], 'render_fps': 10}

    def __init__(self, config: SimConfig | None = None,
                 observation_mode: ObservationMode = 'state',
                 render_mode: str | None = None,
                 reward: RewardConfig | None = None) -> None:
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
        # The task config is ``config`` with the goal size set by ``set_goal`` (the
        # curriculum's); the renderer always draws the configured goal size.
        self.task_config = self.config
        self._previous_action = np.zeros(2)
        self._previous_distance = 0.0
        self._integral_error = 0.0

    def set_goal(self, goal: npt.ArrayLike | None,
                 goal_size_m: float) -> tuple[Any, dict[str, Any]]:
        """Replace the episode's goal and goal size, right after :meth:`reset`.

        The :class:`reacher_sim.wrappers.Curriculum` wrapper calls it to draw its own
        goals. The goal size lasts until the next call (it also sets what counts as
        inside the goal); the reward's progress term restarts from the new distance.

        :param goal: (2,) metres in ``world``, or None to keep the goal drawn by reset.
        :param goal_size_m: the goal's side, metres.
        :return: the observation and info of the changed task, as :meth:`reset` returns.
        """
        cfg = self.config
        self.task_config = dataclasses.replace(
            cfg, geometry=dataclasses.replace(cfg.geometry, goal_size_m=goal_size_m))
        self.arm.config = self.task_config
        if goal is not None:
            self.arm.goal = np.asarray(goal, dtype=np.float64)
        self._previous_distance = self.arm.distance()
        if self.render_mode == 'human':
            self.render()
        return self._observation(), self._info()

    def observe_state(self, joint_positions: npt.ArrayLike,
                      goal: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The state observation of given joint angles and goal, with the task's goal size.

        The observation wrappers build what the policy sees from perturbed joint angles
        and goal with it.

        :param joint_positions: (2,) radians.
        :param goal: (2,) metres in ``world``.
        :return: (11,) float32, see :func:`reacher_sim.observation.state_vector`.
        """
        return state_vector(joint_positions, goal, self.task_config.geometry)

    def _observation(self) -> Any:
        if self.observation_mode == 'state':
            return self.observe_state(self.arm.joint_positions, self.arm.goal)
        pixels = self.renderer.render(self.arm.joint_positions, self.arm.goal)
        if self.observation_mode == 'pixels':
            return pixels
        return {'state': self.observe_state(self.arm.joint_positions, self.arm.goal),
                'pixels': pixels}

    def _info(self) -> dict[str, Any]:
        return {
            'joint_positions': self.arm.joint_positions.copy(),
            'fingertip': self.arm.fingertip,
            'goal': self.arm.goal.copy(),
            'distance': self.arm.distance(),
            'curriculum_level': 1.0,  # the full task; the Curriculum wrapper sets its level
            'goal_size_m': self.task_config.geometry.goal_size_m,
        }

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Start an episode; ``seed`` makes it reproducible (gymnasium API)."""
        super().reset(seed=seed)
        self.arm.reset(self.np_random)
        if self.config.scene.families:
            # A new scene per episode, drawn after the arm so that a clean scene draws
            # nothing and leaves the episode's random stream as it was.
            self.renderer.set_scene(
                self.config.scene.sample(self.np_random, self.renderer.avoid_colours))
        self._elapsed_steps = 0
        self._previous_action = np.zeros(2)
        self._previous_distance = self.arm.distance()
        self._integral_error = 0.0
        if self.render_mode == 'human':
            self.render()
        return self._observation(), self._info()

    def step(self, action: npt.NDArray[np.float32]
             ) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply one action for ``dt`` seconds (gymnasium API)."""
        return self.step_executing(action, action)

    def step_executing(self, action: npt.ArrayLike, executed: npt.ArrayLike
                       ) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """One step in which the arm executes ``executed`` while the reward sees ``action``.

        :meth:`step` passes the action itself. The
        :class:`reacher_sim.wrappers.ActionNoise` wrapper passes the noisy action to
        execute, so that the reward's P and D terms still judge the action the policy
        commanded.

        :param action: (2,) the policy's action; clipped to [-1, 1].
        :param executed: (2,) the action the joints execute; clipped to [-1, 1].
        :return: as :meth:`step`.
        """
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        executed = np.clip(np.asarray(executed, dtype=np.float64), -1.0, 1.0)
        result = self.arm.step(executed * self.config.geometry.max_joint_velocity)
        self._elapsed_steps += 1
        self._integral_error += (result.distance_m / self.config.geometry.arena_size_m
                                 * self.config.timing.dt)
        terms = reward_terms(result.distance_m, self._previous_distance, result.inside_goal,
                             action, self._previous_action, self._integral_error,
                             self.reward_config, self.config, result.success)
        self._previous_action = np.asarray(action, dtype=np.float64)
        self._previous_distance = result.distance_m
        terminated = result.success
        truncated = self._elapsed_steps >= self.config.max_episode_steps and not terminated
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
