"""Gymnasium environment of the camera-watched 2-link reacher."""

from __future__ import annotations

from typing import Any, Literal, SupportsFloat

import gymnasium as gym
from gymnasium import spaces
import numpy as np
import numpy.typing as npt

from reacher_sim.arm import ArmSim
from reacher_sim.config import SimConfig
from reacher_sim.kinematics import forward_kinematics
from reacher_sim.render import ArmRenderer

ObservationMode = Literal['state', 'pixels', 'state_pixels']
STATE_DIM = 11
STATE_LOW = np.array([-1.0] * 6 + [-1.5] * 2 + [-2.5] * 2 + [0.0], dtype=np.float32)
STATE_HIGH = -STATE_LOW + np.array([0.0] * 10 + [1.0], dtype=np.float32)


def state_vector(joint_positions: npt.ArrayLike, goal: npt.ArrayLike,
                 config: SimConfig) -> npt.NDArray[np.float32]:
    """The env's state observation, from joint angles and goal alone.

    The policy node builds the same vector from perception estimates, so a policy trained
    on the env runs unchanged on what the camera sees.

    ====  =========================================  =====  =====
    idx   observation                                min    max
    ====  =========================================  =====  =====
    0-1   cos, sin of the shoulder angle             -1     1
    2-3   cos, sin of the elbow angle                -1     1
    4-5   fingertip x, y / reach                     -1     1
    6-7   goal centre x, y / reach                   -1.5   1.5
    8-9   (goal - fingertip) x, y / reach            -2.5   2.5
    10    1 if the fingertip is inside the goal       0      1
    ====  =========================================  =====  =====

    :param joint_positions: (2,) radians.
    :param goal: (2,) metres in ``world``.
    :param config: the simulator config (link lengths, goal size).
    :return: (11,) float32.
    """
    q = np.asarray(joint_positions, dtype=np.float64)
    goal_xy = np.asarray(goal, dtype=np.float64)
    _, tip = forward_kinematics(q, config.upper_arm_length_m, config.forearm_length_m)
    reach = config.reach_m
    inside = float(np.all(np.abs(goal_xy - tip) <= config.goal_size_m / 2.0))
    return np.concatenate([
        np.cos(q[:1]), np.sin(q[:1]), np.cos(q[1:]), np.sin(q[1:]),
        tip / reach, goal_xy / reach, (goal_xy - tip) / reach, [inside],
    ]).astype(np.float32)


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
    As the seed: ``reward = -distance / arena_size + 1[fingertip inside goal]``,
    in ``info`` as ``reward_dist`` and ``reward_goal``.

    ## Starting State
    Joint angles uniform in [-pi, pi); the goal per ``goal_sampling``.

    ## Episode End
    Terminated when the fingertip has stayed inside the goal for
    ``success_hold_steps`` steps (``info['is_success']`` is then True); truncated after
    ``max_episode_steps`` steps.

    ## Arguments
    ``gymnasium.make('reacher/Reacher-v0', config=SimConfig(...),
    observation_mode='state', render_mode='rgb_array')``; ``render_mode='human'``
    opens a pyglet window (``pip install reacher[viz]``).

    ## Version History
    - v0: initial version.

    :param config: world, arm, camera and task.
    :param observation_mode: 'state', 'pixels' or 'state_pixels'.
    :param render_mode: None, 'rgb_array' or 'human'.
    """

    metadata = {'render_modes': ['rgb_array', 'human'], 'render_fps': 10}

    def __init__(self, config: SimConfig | None = None,
                 observation_mode: ObservationMode = 'state',
                 render_mode: str | None = None) -> None:
        if observation_mode not in ('state', 'pixels', 'state_pixels'):
            raise ValueError(f"observation_mode={observation_mode!r}: use 'state', 'pixels' "
                             "or 'state_pixels'")
        if render_mode is not None and render_mode not in self.metadata['render_modes']:
            raise ValueError(f"render_mode={render_mode!r}: use None, 'rgb_array' or 'human'")
        self.config = config or SimConfig()
        self.observation_mode = observation_mode
        self.render_mode = render_mode
        self.metadata = {**self.metadata, 'render_fps': int(round(1.0 / self.config.dt))}
        self.arm = ArmSim(self.config)
        self.renderer = ArmRenderer(self.config)
        self._viewer: Any = None
        self._elapsed_steps = 0
        size = self.config.image_size
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

    def _observation(self) -> Any:
        if self.observation_mode == 'state':
            return state_vector(self.arm.joint_positions, self.arm.goal, self.config)
        pixels = self.renderer.render(self.arm.joint_positions, self.arm.goal)
        if self.observation_mode == 'pixels':
            return pixels
        return {'state': state_vector(self.arm.joint_positions, self.arm.goal, self.config),
                'pixels': pixels}

    def _info(self) -> dict[str, Any]:
        return {
            'joint_positions': self.arm.joint_positions.copy(),
            'fingertip': self.arm.fingertip,
            'goal': self.arm.goal.copy(),
            'distance': self.arm.distance(),
        }

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Start an episode; ``seed`` makes it reproducible (gymnasium API)."""
        super().reset(seed=seed)
        self.arm.reset(self.np_random)
        self._elapsed_steps = 0
        if self.render_mode == 'human':
            self.render()
        return self._observation(), self._info()

    def step(self, action: npt.NDArray[np.float32]
             ) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply one action for ``dt`` seconds (gymnasium API)."""
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        result = self.arm.step(action * self.config.max_joint_velocity)
        self._elapsed_steps += 1
        reward_dist = -result.distance_m / self.config.arena_size_m
        reward_goal = 1.0 if result.inside_goal else 0.0
        terminated = result.success
        truncated = self._elapsed_steps >= self.config.max_episode_steps and not terminated
        info = self._info()
        info.update(reward_dist=reward_dist, reward_goal=reward_goal,
                    is_success=result.success, hold_steps=result.hold_steps)
        if self.render_mode == 'human':
            self.render()
        return self._observation(), reward_dist + reward_goal, terminated, truncated, info

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
