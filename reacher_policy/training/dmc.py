"""DeepMind Control's reacher_easy from pixels, as a gymnasium env (issue 15's benchmark).

The task is ``dm_control.suite.load('reacher', 'easy')`` (Tassa et al., "DeepMind Control
Suite", arXiv 1801.00690; the ``dm-control`` package, MuJoCo 3.x): a two-link planar arm
whose fingertip must reach a target of radius 0.05 (reward 1 inside the radius, else 0,
per control step of 0.02 s). As in the SLAC paper (Lee et al., arXiv 1907.00953, app. B)
and the DreamerV3 and DrQ papers, the agent sees 64x64 RGB frames of camera 0 and acts
every 4 control steps (action repeat 4): an agent step sums the 4 rewards, so an episode
of 1000 env (control) steps is 250 agent steps, and its return is out of 1000.

Only the training layer imports this module (the runtime never does): it needs
``dm-control`` and a MuJoCo GL backend. MuJoCo renders on the CPU through EGL
(``MUJOCO_GL=egl``, set here when unset; Mesa's libEGL is enough, no GPU).
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

DMC_ENV_NAME = 'dmc/reacher_easy'
"""The env description's ``name`` in SLAC agent checkpoints."""


class DmcPixelEnv(gym.Env[npt.NDArray[np.uint8], npt.NDArray[np.float32]]):
    """A DeepMind Control task from pixels with action repeat.

    Observation: ``(image_size, image_size, 3)`` uint8 RGB of ``camera_id`` (the rendered
    frame after the last repeated control step). Action: ``(2,)`` float32 in [-1, 1]
    (reacher's two joint torques, normalised), held for ``action_repeat`` control steps.
    Reward: the sum of those control steps' rewards (reacher_easy: 0 to ``action_repeat``).
    ``terminated`` is never True for reacher (the episode ends by its time limit, 1000
    control steps: ``truncated``). ``info['env_steps']`` counts control steps in the
    episode.

    Seeding: ``reset(seed=s)`` rebuilds the task with a ``RandomState`` drawn from
    gymnasium's ``np_random`` seeded with ``s`` (target and arm start of every later
    episode follow from it); ``reset()`` without a seed goes on with the same stream.

    :param domain: the suite's domain ('reacher').
    :param task: the suite's task ('easy').
    :param image_size: frame width = height, pixels (64 as the papers).
    :param camera_id: the MuJoCo camera rendered (0 as the papers).
    :param action_repeat: control steps per agent step (4 as the SLAC paper for reacher).
    :raises ValueError: for an action_repeat < 1 or image_size < 1.
    """

    metadata: dict[str, Any] = {'render_modes': []}

    def __init__(self, domain: str = 'reacher', task: str = 'easy', image_size: int = 64,
                 camera_id: int = 0, action_repeat: int = 4) -> None:
        if action_repeat < 1 or image_size < 1:
            raise ValueError(f'action_repeat {action_repeat} and image_size {image_size} '
                             'must be >= 1')
        os.environ.setdefault('MUJOCO_GL', 'egl')
        self.domain, self.task = domain, task
        self.image_size, self.camera_id = image_size, camera_id
        self.action_repeat = action_repeat
        self._env: Any = None
        spec = self._build(np.random.RandomState(0)).action_spec()
        self._env = None
        self.action_space = gym.spaces.Box(-1.0, 1.0, spec.shape, np.float32)
        self._low = np.asarray(spec.minimum, dtype=np.float64)
        self._high = np.asarray(spec.maximum, dtype=np.float64)
        self.observation_space = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.env_steps = 0

    def _build(self, random: np.random.RandomState) -> Any:
        from dm_control import suite
        self._env = suite.load(self.domain, self.task, task_kwargs={'random': random})
        return self._env

    def description(self) -> dict[str, Any]:
        """What SLAC agent checkpoints record of the env (``name`` and the frame set-up)."""
        name = (DMC_ENV_NAME if (self.domain, self.task) == ('reacher', 'easy')
                else f'dmc/{self.domain}_{self.task}')
        return {'name': name, 'image_size': self.image_size, 'camera_id': self.camera_id,
                'action_repeat': self.action_repeat}

    @property
    def physics(self) -> Any:
        """The task's MuJoCo physics (``dm_control.mujoco.Physics``); None before reset."""
        return None if self._env is None else self._env.physics

    def control_timestep(self) -> float:
        """Seconds per control (env) step (reacher: 0.02)."""
        if self._env is None:
            self._build(np.random.RandomState(0))
        return float(self._env.control_timestep())

    def _frame(self) -> npt.NDArray[np.uint8]:
        frame = self._env.physics.render(height=self.image_size, width=self.image_size,
                                         camera_id=self.camera_id)
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[npt.NDArray[np.uint8], dict[str, Any]]:
        """Start an episode; see the class docstring for seeding. Returns (frame, info)."""
        super().reset(seed=seed)
        if seed is not None or self._env is None:
            self._build(np.random.RandomState(int(self.np_random.integers(2**31 - 1))))
        self._env.reset()
        self.env_steps = 0
        return self._frame(), {'env_steps': 0}

    def step(self, action: npt.NDArray[np.float32]
             ) -> tuple[npt.NDArray[np.uint8], float, bool, bool, dict[str, Any]]:
        """Hold ``action`` (clipped to [-1, 1]) for ``action_repeat`` control steps."""
        if self._env is None:
            raise RuntimeError('call reset before step')
        unit = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        command = self._low + (unit + 1.0) * 0.5 * (self._high - self._low)
        reward, terminated, truncated = 0.0, False, False
        for _ in range(self.action_repeat):
            time_step = self._env.step(command)
            self.env_steps += 1
            reward += float(time_step.reward or 0.0)
            if time_step.last():
                terminated = time_step.discount == 0.0
                truncated = not terminated
                break
        return self._frame(), reward, terminated, truncated, {'env_steps': self.env_steps}

    def close(self) -> None:
        """Release the task (and its GL context)."""
        if self._env is not None:
            self._env.close()
            self._env = None
