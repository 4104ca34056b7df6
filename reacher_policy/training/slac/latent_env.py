"""The reacher env seen through the perception's SLAC filter: what the ``slac`` controller reads.

:class:`SlacLatentObservation` wraps a pixel env (``observation_mode='pixels'``) and runs
the runtime :class:`reacher_perception.slac.estimator.SlacEstimator` itself on each
rendered frame, with the previous action passed as the command the perception node would
have received (``action * max_joint_velocity`` rad/s, which the estimator divides by its
checkpoint's velocity limit and clips, as in the loop). The observation is
``Estimate.latent``, the filtered posterior means (z1, z2), float32: exactly what
perception_node publishes on ``perception/latent`` for the same frames and commands. SB3's
SAC (``MlpPolicy``) trains on it (``reacher policy train --preset sac-slac-latent``).

Deviation from SLAC (arXiv 1907.00953 sec. 5): the actor reads the filtered latent the
loop gives it, not the encoder features of the last frames and actions, and the latent
model is frozen (the perception's shipped one, trained with its state heads: the
privileged variant); the critic reads the same latent mean rather than posterior samples.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium import spaces
import numpy as np
import numpy.typing as npt

from reacher_common.weights import latent_model_fingerprint
from reacher_perception.config import PerceptionConfig
from reacher_perception.slac.estimator import SlacEstimator

OBSERVATION = 'slac-latent'
"""``ActorMetadata.observation`` of an actor trained on this wrapper's observation."""


class SlacLatentObservation(gym.ObservationWrapper[Any, Any, Any]):
    """Observe the SLAC filter's latent of each frame instead of the frame.

    :param env: a reacher env (or wrapper of one) whose observation is the rgb8 frame.
    :param checkpoint: the SLAC perception checkpoint ('' = the shipped
        checkpoints/slac_reacher.pt); its geometry must match the env's camera and arm.
    :raises ValueError: if the env does not observe pixels, or the checkpoint does not
        fit its geometry.
    :raises FileNotFoundError: naming a missing checkpoint.
    """

    def __init__(self, env: gym.Env[Any, Any], checkpoint: str = '') -> None:
        super().__init__(env)
        base = env.unwrapped
        if getattr(base, 'observation_mode', None) != 'pixels':
            raise ValueError('SlacLatentObservation needs an env with '
                             "observation_mode='pixels'")
        geometry = base.config.geometry  # type: ignore[attr-defined]
        # The identity filter alone: the latent is its own, with or without the
        # perception node's test-time symmetries, at an eighth of their cost.
        self.estimator = SlacEstimator(PerceptionConfig(
            estimator='slac', geometry=geometry, checkpoint=checkpoint,
            test_time_symmetries=1))
        self.max_joint_velocity = float(geometry.max_joint_velocity)
        model = self.estimator.model.config
        self.latent_dim = model.z1_dim + model.z2_dim
        self.fingerprint = latent_model_fingerprint(self.estimator.checkpoint_path)
        """The latent model's fingerprint, recorded in the exported actor."""
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.latent_dim,), np.float32)
        self._command: npt.NDArray[np.float64] | None = None

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """A new episode: a new filter, started on its first frame without a command."""
        self.estimator.reset()
        self._command = None
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step the env; the latent of the new frame is filtered with this action."""
        clipped = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self._command = clipped * self.max_joint_velocity
        return super().step(action)

    def observation(self, observation: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """The filtered latent (z1, z2) of one frame.

        :param observation: (H, W, 3) uint8, the frame.
        :return: (z1_dim + z2_dim,) float32.
        """
        latent = self.estimator.estimate(observation, self._command).latent
        assert latent is not None
        return latent
